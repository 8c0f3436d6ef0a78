import { describe, expect, it } from "vitest";
import { AddressPolicy, classifyAddress, describeRefusals } from "../../src/http/address.js";
import { ValidationError } from "../../src/index.js";

describe("classifyAddress", () => {
  it.each([
    ["8.8.8.8", "public", "unicast"],
    ["1.1.1.1", "public", "unicast"],
    ["2606:4700:4700::1111", "public", "unicast"],
    ["127.0.0.1", "private", "loopback"],
    ["127.255.0.9", "private", "loopback"],
    ["::1", "private", "loopback"],
    ["[::1]", "private", "loopback"],
    ["10.1.2.3", "private", "private"],
    ["172.16.0.1", "private", "private"],
    ["172.31.255.255", "private", "private"],
    ["192.168.1.1", "private", "private"],
    ["100.64.0.1", "private", "carrierGradeNat"],
    ["fd12:3456::1", "private", "uniqueLocal"],
    ["fc00::1", "private", "uniqueLocal"],
    ["169.254.169.254", "metadata", "metadata"],
    ["169.254.170.2", "metadata", "metadata"],
    ["fd00:ec2::254", "metadata", "metadata"],
    ["100.100.100.200", "metadata", "metadata"],
    ["::ffff:169.254.169.254", "metadata", "metadata"],
    ["169.254.1.1", "other", "linkLocal"],
    ["fe80::1", "other", "linkLocal"],
    ["fe80::1%eth0", "other", "linkLocal"],
    ["0.0.0.0", "other", "unspecified"],
    ["0.1.2.3", "other", "unspecified"],
    ["::", "other", "unspecified"],
    ["255.255.255.255", "other", "broadcast"],
    ["224.0.0.1", "other", "multicast"],
    ["ff02::1", "other", "multicast"],
    ["192.0.2.1", "other", "reserved"],
    ["240.0.0.1", "other", "reserved"],
    ["2001:db8::1", "other", "reserved"],
    ["64:ff9b::7f00:1", "other", "rfc6052"],
    ["2002:7f00:1::", "other", "6to4"],
  ])("%s is %s (%s)", (address, kind, range) => {
    expect(classifyAddress(address)).toMatchObject({ kind, range });
  });

  it("classifies an IPv4-mapped IPv6 address as the IPv4 address it maps", () => {
    expect(classifyAddress("::ffff:127.0.0.1")).toEqual({ address: "127.0.0.1", range: "loopback", kind: "private" });
    expect(classifyAddress("::ffff:7f00:1")).toEqual({ address: "127.0.0.1", range: "loopback", kind: "private" });
    expect(classifyAddress("::ffff:10.0.0.1")).toMatchObject({ address: "10.0.0.1", kind: "private" });
    expect(classifyAddress("::ffff:8.8.8.8")).toMatchObject({ address: "8.8.8.8", kind: "public" });
  });

  it("is undefined for what is not an IP address, and for IPv4 not in four decimal parts", () => {
    for (const text of ["localhost", "example.com", "", "1.2.3", "127.1", "0x7f.0.0.1", "2130706433", "1.2.3.4.5", "::g"]) {
      expect(classifyAddress(text), text).toBeUndefined();
    }
  });
});

describe("AddressPolicy", () => {
  it("by default allows public addresses only", () => {
    const policy = new AddressPolicy();
    expect(policy.refusal("8.8.8.8")).toBeUndefined();
    expect(policy.refusal("2606:4700:4700::1111")).toBeUndefined();
    for (const address of ["127.0.0.1", "::1", "10.0.0.1", "192.168.0.10", "100.64.1.1", "fd00::1", "169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1"]) {
      expect(policy.refusal(address), address).toBeDefined();
    }
  });

  it("refuses text that is not an IP address", () => {
    expect(new AddressPolicy({ allowPrivateNetworks: true }).refusal("localhost")).toMatchObject({ what: "not an IP address" });
  });

  it("allowPrivateNetworks adds loopback, RFC 1918, CGNAT and unique local; not metadata, link-local or special ranges", () => {
    const policy = new AddressPolicy({ allowPrivateNetworks: true });
    for (const address of ["127.0.0.1", "::1", "10.0.0.1", "172.20.0.1", "192.168.0.10", "100.64.1.1", "fd00::1", "::ffff:192.168.0.1"]) {
      expect(policy.refusal(address), address).toBeUndefined();
    }
    for (const address of ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.10.10", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "192.0.2.1"]) {
      expect(policy.refusal(address), address).toBeDefined();
    }
  });

  it("allowedNetworks allows what it lists, whatever it is, and nothing more", () => {
    const policy = new AddressPolicy({ allowedNetworks: ["10.20.0.0/16", "127.0.0.2", "fd12::/16", "169.254.169.254/32"] });
    for (const address of ["10.20.3.4", "127.0.0.2", "fd12::5", "169.254.169.254", "::ffff:10.20.0.1"]) {
      expect(policy.refusal(address), address).toBeUndefined();
    }
    for (const address of ["10.21.0.1", "127.0.0.1", "fd13::1", "169.254.170.2"]) {
      expect(policy.refusal(address), address).toBeDefined();
    }
  });

  it("reads an IPv4-mapped IPv6 network as its IPv4 network", () => {
    const policy = new AddressPolicy({ allowedNetworks: ["::ffff:10.0.0.0/104"] });
    expect(policy.refusal("10.1.2.3")).toBeUndefined();
    expect(policy.refusal("11.0.0.1")).toBeUndefined(); // public anyway
    expect(policy.refusal("192.168.0.1")).toBeDefined();
  });

  it("says what an address is and which option would allow it", () => {
    const policy = new AddressPolicy();
    expect(describeRefusals([policy.refusal("127.0.0.1")!])).toBe(
      "127.0.0.1 is loopback: this worker does not connect there (allow it with allowPrivateNetworks or allowedNetworks)",
    );
    expect(describeRefusals([policy.refusal("169.254.169.254")!])).toBe(
      "169.254.169.254 is a cloud metadata service: this worker does not connect there (allow it with allowedNetworks)",
    );
    expect(describeRefusals([policy.refusal("127.0.0.1")!, policy.refusal("::1")!], "localhost")).toBe(
      "localhost resolves to 127.0.0.1 (loopback), ::1 (loopback): this worker does not connect there (allow it with allowPrivateNetworks or allowedNetworks)",
    );
    expect(describeRefusals([], "nowhere.example")).toBe("nowhere.example resolves to no address: this worker does not connect there");
  });

  it("refuses a bad network with a ValidationError naming it", () => {
    for (const bad of ["10.0.0.0/33", "nonsense", "10.0.0/8", "", 42]) {
      const error = (() => {
        try {
          new AddressPolicy({ allowedNetworks: ["10.0.0.0/8", bad as string] });
        } catch (e) {
          return e;
        }
      })();
      expect(error, String(bad)).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe("allowedNetworks.1");
    }
    expect(() => new AddressPolicy({ allowedNetworks: "10.0.0.0/8" as never })).toThrow(/allowedNetworks: must be an array/);
  });
});
