import { z } from "zod";
import { storableString } from "../json.js";

/** The methods the HTTP task sends. */
export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** Longest request timeout a job can ask for: 10 minutes (the job's lease is renewed meanwhile). */
export const HTTP_TIMEOUT_MAX_MS = 600_000;
/** Largest body excerpt a job can ask for, in bytes: the whole `result` stays under `RESULT_MAX_BYTES`. */
export const HTTP_EXCERPT_MAX_BYTES = 4_096;
/** Most redirects a job can ask to follow. */
export const HTTP_REDIRECTS_MAX = 10;

/** A header name: an HTTP token (RFC 9110 section 5.1). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
/**
 * Headers the HTTP task sets itself, or that would make the request something else:
 * the host comes from the URL, framing from the body, and hop-by-hop headers belong
 * to the connection.
 */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "proxy-connection",
]);
/** A secret's name, as the worker's `secrets` option spells it. */
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Checks header names (record keys): zod would only say "Invalid key in record". */
function checkHeaderNames(headers: Record<string, string>, ctx: z.RefinementCtx) {
  for (const name of Object.keys(headers)) {
    if (!HEADER_NAME.test(name)) {
      ctx.addIssue({ code: "custom", path: [name], message: "header names are HTTP tokens: letters, digits and ! # $ % & ' * + - . ^ _ ` | ~" });
    } else if (RESERVED_HEADERS.has(name.toLowerCase())) {
      ctx.addIssue({ code: "custom", path: [name], message: `${name} is set by the HTTP task itself (or is hop-by-hop) and cannot be given` });
    }
  }
}

/** A header value: no line breaks or NUL, so one header cannot smuggle another. */
const headerValue = z
  .string()
  .max(8_192)
  .refine((value) => !/[\r\n\u0000]/.test(value), { error: "a header value cannot hold CR, LF or NUL" });

const url = storableString("must be a URL string")
  .max(8_192)
  .superRefine((text, ctx) => {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      ctx.addIssue({ code: "custom", message: `is not a valid URL: ${JSON.stringify(text.slice(0, 100))}` });
      return;
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      ctx.addIssue({ code: "custom", message: `must be an http:// or https:// URL, not ${parsed.protocol}` });
    } else if (parsed.username || parsed.password) {
      // The URL is stored in the row and written in logs: credentials go in secretHeaders.
      ctx.addIssue({ code: "custom", message: "cannot carry a user name or password (it is stored and logged); send credentials with secretHeaders" });
    }
  });

const STATUS_SPEC_RULE = 'a status is a code from 100 to 599, a class such as "2xx", or a range such as "200-204"';

/** Whether a value is a status spec: `200`, `"2xx"` or `"200-204"` (low to high). */
function isStatusSpec(spec: number | string): boolean {
  if (typeof spec === "number") return spec >= 100 && spec <= 599;
  if (/^[1-5]xx$/.test(spec)) return true;
  return /^[1-5]\d\d-[1-5]\d\d$/.test(spec) && Number(spec.slice(0, 3)) <= Number(spec.slice(4));
}

const statusSpec = z.union([z.int(), z.string()], { error: STATUS_SPEC_RULE }).refine(isStatusSpec, { error: STATUS_SPEC_RULE });

/** What a successful request's status may be. */
export type StatusSpec = z.output<typeof statusSpec>;

/**
 * The payload of `punctual.http` jobs: what to send, and what counts as success. Strict:
 * an unknown field (a typo such as `"header"`) is refused, at enqueue from TypeScript
 * and by the worker for a row written by SQL.
 */
export const httpRequestPayload = z
  .strictObject({
    /** Default GET. */
    method: z.enum(HTTP_METHODS, { error: `must be one of ${HTTP_METHODS.join(", ")} (upper case)` }).default("GET"),
    /** An http:// or https:// URL, without user name or password. */
    url,
    /** Headers sent as given; stored in the row and shown to operators. */
    headers: z.record(z.string(), headerValue).superRefine(checkHeaderNames).default({}),
    /**
     * Headers whose values are secrets: header name -> the name of a secret the worker
     * holds (`httpTask({ secrets })`). Only the secret's name is in the row.
     */
    secretHeaders: z
      .record(z.string(), z.string().regex(SECRET_NAME, { error: "secret names are letters, digits and _, not starting with a digit" }))
      .superRefine(checkHeaderNames)
      .default({}),
    /**
     * A string is sent as is (text/plain unless a content-type is given); any other JSON
     * value as JSON (application/json); null or absent: no body.
     */
    body: z.union([z.string(), z.json()]).optional(),
    /** The whole request: connect, redirects, headers and body. Default 10 s; 1 ms to 10 minutes. */
    timeoutMs: z.int().min(1).max(HTTP_TIMEOUT_MAX_MS).default(10_000),
    /** The statuses that mean success. Default `["2xx"]`. */
    successStatuses: z.array(statusSpec).min(1).max(64).default(["2xx"]),
    /** How much of the response body is read and kept in `result`, in bytes. Default 2,048; at most 4,096. */
    maxResponseBytes: z.int().min(0).max(HTTP_EXCERPT_MAX_BYTES).default(2_048),
    /** Redirects followed (each hop checked like the first); 0 answers with the 3xx itself. Default 5; at most 10. */
    maxRedirects: z.int().min(0).max(HTTP_REDIRECTS_MAX).default(5),
  })
  .superRefine((payload, ctx) => {
    if (payload.body != null && (payload.method === "GET" || payload.method === "HEAD")) {
      ctx.addIssue({ code: "custom", path: ["body"], message: `a ${payload.method} request cannot have a body` });
    }
    // Header names are case-insensitive: each may be given once, in headers or secretHeaders.
    const seen = new Set<string>();
    for (const [field, names] of [["headers", Object.keys(payload.headers)], ["secretHeaders", Object.keys(payload.secretHeaders)]] as const) {
      for (const name of names) {
        if (seen.has(name.toLowerCase())) {
          ctx.addIssue({ code: "custom", path: [field, name], message: `${name} is given twice (header names ignore case): give it once` });
        }
        seen.add(name.toLowerCase());
      }
    }
  });

/** What `enqueue` and `schedule` take for a `punctual.http` job. */
export type HttpRequestPayload = z.input<typeof httpRequestPayload>;
/** A `punctual.http` payload with its defaults applied, as the handler gets it. */
export type HttpRequest = z.output<typeof httpRequestPayload>;

/** Whether `status` is one of `specs` (`200`, `"2xx"`, `"200-204"`). */
export function statusMatches(status: number, specs: readonly StatusSpec[]): boolean {
  return specs.some((spec) => {
    if (typeof spec === "number") return status === spec;
    if (spec.endsWith("xx")) return Math.floor(status / 100) === Number(spec[0]);
    return status >= Number(spec.slice(0, 3)) && status <= Number(spec.slice(4));
  });
}
