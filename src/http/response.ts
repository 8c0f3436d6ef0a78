import { RESULT_MAX_BYTES } from "../worker/outcome-batcher.js";

/**
 * What a `punctual.http` attempt leaves in the row's `result` column, on success and on
 * failure alike. Secret header values never appear in it: what the server echoes is
 * redacted (`[secret NAME]`).
 */
export interface HttpResult {
  method: string;
  /** The URL of the last request sent (after redirects). */
  url: string;
  /** The response's status; absent when none came (timeout, network error, refused address). */
  status?: number;
  /** Whether the status is one the job counts as success. */
  ok: boolean;
  /** From sending the first request to the end of the excerpt (or the failure), in milliseconds. */
  durationMs: number;
  /** The URLs redirected to, in order, when redirects were followed. */
  redirects?: string[];
  /** Some response headers (`RESULT_HEADERS`), each cut to 256 characters. */
  headers?: Record<string, string>;
  /** The start of the response body as UTF-8 text, at most `maxResponseBytes` bytes. */
  body?: string;
  /** True when the body went on past the excerpt. */
  bodyTruncated?: true;
  /** The delay the next attempt waits, from `Retry-After`, when it was honoured. */
  retryAfterMs?: number;
  /** Why no response came (timeout, network error, refused address, too many redirects). */
  error?: string;
}

/** The response headers kept in `result`: what tells what happened, never cookies or credentials. */
export const RESULT_HEADERS = [
  "content-type",
  "content-length",
  "location",
  "retry-after",
  "date",
  "etag",
  "last-modified",
  "x-request-id",
  "request-id",
] as const;

const HEADER_VALUE_MAX = 256;

/** The kept subset of response headers (see `RESULT_HEADERS`). */
export function keptHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of RESULT_HEADERS) {
    const value = headers[name];
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(", ") : value;
    kept[name] = text.length > HEADER_VALUE_MAX ? `${text.slice(0, HEADER_VALUE_MAX)}…` : text;
  }
  return kept;
}

/**
 * The delay a `Retry-After` header asks for, in milliseconds: delay-seconds (`120`) or an
 * HTTP date, measured from `now` (the response's own `Date` header when it has one, so
 * that clock skew between the server and the worker does not count). A date in the past
 * is 0. Undefined when absent or unreadable (the backoff then applies).
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text), 1e9) * 1000;
  // An HTTP date names its weekday and zone (RFC 9110 section 5.6.7); a bare number or
  // other loose text that Date.parse would accept is not one.
  if (!/^[A-Za-z]{3},? /.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The clock a response's `Retry-After` date is read against: its `Date` header, else the worker's. */
export function responseNow(dateHeader: string | string[] | undefined): number {
  const at = typeof dateHeader === "string" ? Date.parse(dateHeader) : Number.NaN;
  return Number.isNaN(at) ? Date.now() : at;
}

/**
 * Reads the start of a body: at most `limit + slack` bytes, then stops (the rest is
 * never read; the caller closes the stream). `more` is true when the body went on past
 * `limit`. `slack` is read past the limit so that a secret or a multi-byte character
 * that starts before the cut can be recognised whole.
 */
export async function readStart(
  body: AsyncIterable<Uint8Array>,
  limit: number,
  slack: number,
): Promise<{ bytes: Buffer; more: boolean }> {
  const window = limit + slack;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    size += chunk.byteLength;
    if (size > window) break;
  }
  const bytes = Buffer.concat(chunks, Math.min(size, window + 1));
  return { bytes: bytes.subarray(0, window), more: size > limit };
}

/**
 * The body excerpt: the bytes as UTF-8 text (invalid sequences as U+FFFD), with
 * `redact` applied, then cut to at most `limit` bytes on a character boundary. NUL,
 * which PostgreSQL cannot store, becomes U+FFFD. `cut` is true when anything was left out.
 */
export function bodyExcerpt(
  bytes: Buffer,
  limit: number,
  more: boolean,
  redact: (text: string) => string,
): { text: string; cut: boolean } {
  const decoded = redact(new TextDecoder("utf-8").decode(bytes)).replaceAll("\u0000", "\uFFFD");
  const encoded = Buffer.from(decoded, "utf8");
  if (encoded.length <= limit) return { text: decoded, cut: more };
  return { text: utf8Prefix(encoded, limit), cut: true };
}

/** The longest prefix of UTF-8 `bytes` of at most `max` bytes that ends on a character boundary, as text. */
export function utf8Prefix(bytes: Buffer, max: number): string {
  let end = Math.min(max, bytes.length);
  // Back up over continuation bytes (10xxxxxx) to the lead byte of the character cut.
  if (end < bytes.length) while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString("utf8");
}

/**
 * The result made to fit `RESULT_MAX_BYTES` of JSON, by cutting its body excerpt
 * (which JSON escaping can swell): the worker would otherwise store a truncation
 * note in its place.
 */
export function fitResult(result: HttpResult): HttpResult {
  let fitted = result;
  for (let i = 0; i < 8; i++) {
    const size = Buffer.byteLength(JSON.stringify(fitted));
    if (size <= RESULT_MAX_BYTES || !fitted.body) return fitted;
    const body = Buffer.from(fitted.body, "utf8");
    const keep = Math.max(0, body.length - (size - RESULT_MAX_BYTES) - 64);
    fitted = { ...fitted, body: utf8Prefix(body, keep), bodyTruncated: true };
  }
  return fitted;
}
