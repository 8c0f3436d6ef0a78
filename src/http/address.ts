import ipaddr from "ipaddr.js";
import { ValidationError } from "../errors.js";

/**
 * What an address is, for the HTTP task's network policy:
 * - `public`: a global unicast address; always allowed;
 * - `private`: loopback, RFC 1918, carrier-grade NAT (RFC 6598), IPv6 unique local:
 *   allowed with `allowPrivateNetworks`;
 * - `metadata`: a cloud instance-metadata service (169.254.169.254 and its kin): only
 *   with `allowedNetworks`, even when private networks are allowed, as it hands out the
 *   machine's credentials;
 * - `other`: link-local, unspecified, broadcast, multicast, reserved, documentation,
 *   NAT64 and other transition ranges: only with `allowedNetworks`.
 */
export type AddressKind = "public" | "private" | "metadata" | "other";

/** An address, classified. */
export interface AddressClass {
  /** The address in canonical form (an IPv4-mapped IPv6 address as its IPv4 address). */
  address: string;
  /** ipaddr.js's range name (`unicast`, `loopback`, `private`, `linkLocal`, ...), or `metadata`. */
  range: string;
  kind: AddressKind;
}

/**
 * Cloud metadata services, which answer any process on the machine with its
 * credentials: AWS, GCP, Azure, Oracle, DigitalOcean (169.254.169.254), AWS ECS task
 * metadata (169.254.170.2, .23), AWS IPv6 (fd00:ec2::254, ::23), Alibaba
 * (100.100.100.200, inside the carrier-grade NAT range).
 */
const METADATA_NETWORKS = [
  "169.254.169.254/32",
  "169.254.170.2/32",
  "169.254.170.23/32",
  "100.100.100.200/32",
  "fd00:ec2::254/128",
  "fd00:ec2::23/128",
].map((cidr) => ipaddr.parseCIDR(cidr));

const PRIVATE_RANGES = new Set(["loopback", "private", "carrierGradeNat", "uniqueLocal"]);

/** Words for range names, in refusal messages. */
const RANGE_WORDS: Record<string, string> = {
  loopback: "loopback",
  private: "a private network (RFC 1918)",
  carrierGradeNat: "carrier-grade NAT (RFC 6598)",
  uniqueLocal: "an IPv6 unique local address",
  linkLocal: "link-local",
  metadata: "a cloud metadata service",
  unspecified: "the unspecified address",
  broadcast: "broadcast",
  multicast: "multicast",
  reserved: "a reserved range",
};

/** Parses an IP address (IPv6 with or without brackets), mapping IPv4-mapped IPv6 to IPv4; undefined if it is none. */
function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  // isValid accepts what `process` parses; IPv4 must be four decimal parts (sockets and
  // resolvers give no other form; URL hosts are normalised by the URL parser first).
  if (ipaddr.IPv4.isValid(bare) ? !ipaddr.IPv4.isValidFourPartDecimal(bare) : !ipaddr.IPv6.isValid(bare)) return undefined;
  return ipaddr.process(bare);
}

function inNetwork(address: ipaddr.IPv4 | ipaddr.IPv6, [network, bits]: [ipaddr.IPv4 | ipaddr.IPv6, number]): boolean {
  return address.kind() === network.kind() && address.match(network, bits);
}

/** Classifies an IP address (see `AddressKind`); undefined for text that is not an IP address. */
export function classifyAddress(text: string): AddressClass | undefined {
  const parsed = parseAddress(text);
  if (!parsed) return undefined;
  const address = parsed.toString();
  if (METADATA_NETWORKS.some((network) => inNetwork(parsed, network))) return { address, range: "metadata", kind: "metadata" };
  const range = parsed.range();
  const kind: AddressKind = range === "unicast" ? "public" : PRIVATE_RANGES.has(range) ? "private" : "other";
  return { address, range, kind };
}

/** Which addresses the HTTP task may connect to (see `HttpTaskOptions`). */
export interface AddressPolicyOptions {
  /** Allow loopback, RFC 1918, carrier-grade NAT and IPv6 unique local addresses (not metadata services). Default false. */
  allowPrivateNetworks?: boolean;
  /** Networks allowed whatever their kind, metadata services included: CIDRs (`10.1.0.0/16`, `fd12::/64`) or addresses. */
  allowedNetworks?: readonly string[];
}

/**
 * Decides, for each address the HTTP task is about to connect to, whether it may. Public
 * addresses always; private ones with `allowPrivateNetworks`; any address inside
 * `allowedNetworks`; nothing else.
 */
export class AddressPolicy {
  private readonly allowPrivate: boolean;
  private readonly allowed: [ipaddr.IPv4 | ipaddr.IPv6, number][];

  constructor(options: AddressPolicyOptions = {}) {
    this.allowPrivate = options.allowPrivateNetworks === true;
    if (options.allowedNetworks !== undefined && !Array.isArray(options.allowedNetworks)) {
      throw new ValidationError("allowedNetworks", 'must be an array of CIDRs such as "10.0.0.0/8" or addresses');
    }
    this.allowed = (options.allowedNetworks ?? []).map((cidr, i) => parseNetwork(cidr, `allowedNetworks.${i}`));
  }

  /**
   * Why `address` may not be connected to, or undefined when it may. Text that is not
   * an IP address is refused.
   */
  refusal(address: string): Refusal | undefined {
    const parsed = parseAddress(address);
    if (!parsed) return { address, what: "not an IP address", hint: "" };
    if (this.allowed.some((network) => inNetwork(parsed, network))) return undefined;
    const found = classifyAddress(address)!;
    if (found.kind === "public" || (found.kind === "private" && this.allowPrivate)) return undefined;
    return {
      address: found.address,
      what: RANGE_WORDS[found.range] ?? `in the ${found.range} range`,
      hint: found.kind === "private" ? "allowPrivateNetworks or allowedNetworks" : "allowedNetworks",
    };
  }
}

/** An address the policy refuses: which, what it is, and the option that would allow it. */
export interface Refusal {
  address: string;
  what: string;
  hint: string;
}

/**
 * A refusal in words: `127.0.0.1 is loopback: ...`, or, for a host name,
 * `localhost resolves to 127.0.0.1 (loopback), ::1 (loopback): ...`.
 */
export function describeRefusals(refusals: readonly Refusal[], hostname?: string): string {
  const hints = [...new Set(refusals.map((r) => r.hint).filter(Boolean))];
  const allow = hints.length ? ` (allow it with ${hints.join("; or ")})` : "";
  const tail = `this worker does not connect there${allow}`;
  if (hostname === undefined && refusals.length === 1) return `${refusals[0]!.address} is ${refusals[0]!.what}: ${tail}`;
  const list = refusals.map((r) => `${r.address} (${r.what})`).join(", ");
  return `${hostname ?? "the host"} resolves to ${list || "no address"}: ${tail}`;
}

/** A CIDR or a bare address (a /32 or /128), or a `ValidationError` naming `field`. */
function parseNetwork(text: unknown, field: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (typeof text === "string") {
    try {
      // IPv4 in four decimal parts only: "10.0.0/8" is refused rather than read as 10.0.0.0/8 or 10.0.0.8/8.
      if (text.includes("/") && (ipaddr.IPv4.isValidCIDRFourPartDecimal(text) || ipaddr.IPv6.isValidCIDR(text))) {
        const [network, bits] = ipaddr.parseCIDR(text);
        // An IPv4-mapped IPv6 network is its IPv4 network: addresses are compared mapped back.
        if (network.kind() === "ipv6" && (network as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
          return [(network as ipaddr.IPv6).toIPv4Address(), bits - 96];
        }
        return [network, bits];
      }
      const address = parseAddress(text);
      if (address) return [address, address.kind() === "ipv4" ? 32 : 128];
    } catch {
      // Reported below.
    }
  }
  throw new ValidationError(field, `${JSON.stringify(text)} is not a CIDR such as "10.0.0.0/8" or "fd00::/8", or an IP address`);
}
