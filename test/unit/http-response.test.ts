import { describe, expect, it } from "vitest";
import { httpRequestPayload, statusMatches } from "../../src/http/payload.js";
import { bodyExcerpt, fitResult, keptHeaders, parseRetryAfter, readStart, responseNow, utf8Prefix } from "../../src/http/response.js";
import { resolveSecretHeaders, secretRedactor } from "../../src/http/secrets.js";
import { RESULT_MAX_BYTES, storableResult } from "../../src/worker/outcome-batcher.js";

const NOW = Date.parse("2030-01-01T00:00:00Z");

describe("parseRetryAfter", () => {
  it("reads delay-seconds", () => {
    expect(parseRetryAfter("2", NOW)).toBe(2000);
    expect(parseRetryAfter(" 120 ", NOW)).toBe(120_000);
    expect(parseRetryAfter("0", NOW)).toBe(0);
  });

  it("reads an HTTP date against the given clock; a past date is 0", () => {
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:00:07 GMT", NOW)).toBe(7000);
    expect(parseRetryAfter(new Date(NOW + 90_000).toUTCString(), NOW)).toBe(90_000);
    expect(parseRetryAfter("Mon, 31 Dec 2029 23:00:00 GMT", NOW)).toBe(0);
  });

  it("is undefined when absent or unreadable", () => {
    for (const value of [undefined, "", "soon", "-5", "1.5", "2030-01-01", "Xyz, 99 Foo 2030 00:00:00 GMT"]) {
      expect(parseRetryAfter(value, NOW), String(value)).toBeUndefined();
    }
  });

  it("takes the response's Date header as now when it has a valid one", () => {
    expect(responseNow("Tue, 01 Jan 2030 00:00:00 GMT")).toBe(NOW);
    const before = Date.now();
    expect(responseNow("garbage")).toBeGreaterThanOrEqual(before);
    expect(responseNow(undefined)).toBeGreaterThanOrEqual(before);
  });
});

describe("statusMatches", () => {
  it("matches codes, classes and ranges", () => {
    expect(statusMatches(204, ["2xx"])).toBe(true);
    expect(statusMatches(301, ["2xx"])).toBe(false);
    expect(statusMatches(404, ["2xx", 404])).toBe(true);
    expect(statusMatches(202, ["200-204"])).toBe(true);
    expect(statusMatches(205, ["200-204"])).toBe(false);
  });

  it("the payload's defaults: GET, 2xx, 10 s, a 2 KiB excerpt, 5 redirects", () => {
    expect(httpRequestPayload.parse({ url: "https://example.com" })).toEqual({
      method: "GET",
      url: "https://example.com",
      headers: {},
      secretHeaders: {},
      timeoutMs: 10_000,
      successStatuses: ["2xx"],
      maxResponseBytes: 2048,
      maxRedirects: 5,
    });
  });
});

describe("body excerpt", () => {
  async function* chunks(...parts: string[]) {
    for (const part of parts) yield Buffer.from(part);
  }

  it("stops reading past the limit and its slack, and says there was more", async () => {
    const read = await readStart(chunks("aaaa", "bbbb", "cccc", "dddd"), 5, 2);
    expect(read.bytes.toString()).toBe("aaaabbb");
    expect(read.more).toBe(true);
    const whole = await readStart(chunks("abc"), 5, 2);
    expect(whole).toEqual({ bytes: Buffer.from("abc"), more: false });
  });

  it("cuts UTF-8 on a character boundary", () => {
    const bytes = Buffer.from("aé€😀");
    expect(utf8Prefix(bytes, 1)).toBe("a");
    expect(utf8Prefix(bytes, 2)).toBe("a");
    expect(utf8Prefix(bytes, 3)).toBe("aé");
    expect(utf8Prefix(bytes, 5)).toBe("aé");
    expect(utf8Prefix(bytes, 6)).toBe("aé€");
    expect(utf8Prefix(bytes, 9)).toBe("aé€");
    expect(utf8Prefix(bytes, 10)).toBe("aé€😀");
    expect(utf8Prefix(bytes, 100)).toBe("aé€😀");
  });

  it("decodes invalid UTF-8 and NUL as U+FFFD, redacts, then cuts", () => {
    const redact = (text: string) => text.replaceAll("TOKEN", "[secret T]");
    expect(bodyExcerpt(Buffer.from([0x61, 0xff, 0x00, 0x62]), 100, false, redact)).toEqual({ text: "a\uFFFD\uFFFDb", cut: false });
    // The secret straddles the limit (6 bytes): read whole thanks to the slack, it is redacted, not half shown.
    expect(bodyExcerpt(Buffer.from("abcdTOKENxyz"), 6, true, redact)).toEqual({ text: "abcd[s", cut: true });
    expect(bodyExcerpt(Buffer.from("short"), 100, true, redact)).toEqual({ text: "short", cut: true });
  });

  it("keeps a few headers, cut to 256 characters, never cookies", () => {
    expect(
      keptHeaders({ "content-type": "text/plain", "set-cookie": ["a=1"], "x-request-id": "r".repeat(300), server: "nginx", etag: ["a", "b"] }),
    ).toEqual({ "content-type": "text/plain", "x-request-id": `${"r".repeat(256)}…`, etag: "a, b" });
  });

  it("fitResult cuts the body so that the result's JSON fits RESULT_MAX_BYTES", () => {
    const base = { method: "GET", url: "https://example.com/", ok: true, durationMs: 1, status: 200 };
    const small = { ...base, body: "fine" };
    expect(fitResult(small)).toBe(small);
    // Quotes double in JSON: 4,096 of them are 8 KiB of JSON on their own.
    const fitted = fitResult({ ...base, body: '"'.repeat(4096) });
    expect(Buffer.byteLength(JSON.stringify(fitted))).toBeLessThanOrEqual(RESULT_MAX_BYTES);
    expect(fitted.bodyTruncated).toBe(true);
    expect(fitted.body!.length).toBeGreaterThan(3900);
  });
});

describe("secrets", () => {
  it("resolves values and functions, and names a missing or bad secret without its value", async () => {
    const { headers, resolved } = await resolveSecretHeaders(
      { Authorization: "A", "X-Key": "B" },
      { A: "Bearer abc", B: async () => "k-123" },
    );
    expect(headers).toEqual({ Authorization: "Bearer abc", "X-Key": "k-123" });
    expect(resolved).toEqual([{ name: "A", value: "Bearer abc" }, { name: "B", value: "k-123" }]);
    await expect(resolveSecretHeaders({ X: "MISSING" }, {})).rejects.toThrow("secret MISSING (for header X) is not configured on this worker");
    await expect(resolveSecretHeaders({ X: "UNSET" }, { UNSET: undefined })).rejects.toThrow("secret UNSET (for header X) is not set on this worker");
    const bad = resolveSecretHeaders({ X: "BAD" }, { BAD: "line\r\nX-Injected: 1" });
    await expect(bad).rejects.toThrow("secret BAD (for header X) is not a valid header value");
    await expect(bad).rejects.not.toThrow(/Injected/);
  });

  it("redacts every occurrence, the credentials of a scheme value too, longest first", () => {
    const redact = secretRedactor([
      { name: "TOKEN", value: "Bearer abcdefgh12345" },
      { name: "SHORT", value: "abc" },
    ]);
    expect(redact("got Bearer abcdefgh12345, then abcdefgh12345, then abc")).toBe(
      "got [secret TOKEN], then [secret TOKEN], then [secret SHORT]",
    );
    expect(secretRedactor([])("unchanged")).toBe("unchanged");
  });
});

describe("storableResult", () => {
  it("keeps JSON up to RESULT_MAX_BYTES, as a copy", () => {
    const value = { a: [1, "two", null], d: new Date("2030-01-01T00:00:00Z") };
    const stored = storableResult(value);
    expect(stored).toEqual({ a: [1, "two", null], d: "2030-01-01T00:00:00.000Z" });
    expect(stored).not.toBe(value);
    expect(storableResult("x".repeat(RESULT_MAX_BYTES - 2))).toBe("x".repeat(RESULT_MAX_BYTES - 2));
  });

  it("keeps a note for what is too large (in UTF-8 bytes) or what JSON cannot carry", () => {
    expect(storableResult("x".repeat(RESULT_MAX_BYTES - 1))).toMatchObject({ truncated: true, bytes: RESULT_MAX_BYTES + 1 });
    const wide = storableResult("€".repeat(3000)) as { bytes: number; preview: string };
    expect(wide.bytes).toBe(9002);
    expect(wide.preview).toHaveLength(1024);
    expect(storableResult({ nul: "a\u0000b" })).toEqual({ unstorable: "result.nul: contains a NUL character (\\u0000), which PostgreSQL cannot store" });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(storableResult(cycle)).toEqual({ unstorable: "result.self: contains a cycle" });
    expect(storableResult(() => 1)).toMatchObject({ unstorable: expect.stringContaining("function") });
  });
});
