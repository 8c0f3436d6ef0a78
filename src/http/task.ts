import { STATUS_CODES } from "node:http";
import type { Agent } from "undici";
import { z } from "zod";
import { PermanentError, PunctualError, RETRY_AFTER_MAX_MS, RetryAfterError, ValidationError } from "../errors.js";
import { defineTask, zodError, type JobContext, type Task, type TaskDefaults } from "../tasks.js";
import { AddressPolicy, type AddressPolicyOptions } from "./address.js";
import { addressRefusal, guardedAgent, loadUndici, type Lookup } from "./connector.js";
import { httpRequestPayload, statusMatches, type HttpRequest } from "./payload.js";
import {
  bodyExcerpt,
  fitResult,
  keptHeaders,
  parseRetryAfter,
  readStart,
  responseNow,
  type HttpResult,
} from "./response.js";
import { longestSecretBytes, resolveSecretHeaders, secretRedactor, type Secrets } from "./secrets.js";

/** The task name of the built-in HTTP task, in `punctual.jobs.task` and for SQL. */
export const HTTP_TASK_NAME = "punctual.http";

/** Default bound on a `Retry-After` delay: one hour. */
export const HTTP_RETRY_AFTER_MAX_MS = 3_600_000;

/** How a worker runs `punctual.http` jobs: where they may connect, the secrets they may send. */
export interface HttpTaskOptions extends AddressPolicyOptions, TaskDefaults {
  /**
   * Secrets that payloads name in `secretHeaders`, by name: a value, or a function that
   * returns it at each request. Their values never reach the row, the logs, errors or
   * `result`: what a server echoes back is redacted as `[secret NAME]`.
   *
   * @example
   * httpTask({ secrets: { PING_TOKEN: `Bearer ${process.env.PING_TOKEN}` } })
   */
  secrets?: Secrets;
  /** The longest delay a `Retry-After` header can set for the next attempt; longer ones are cut to it. Default one hour. */
  maxRetryAfterMs?: number;
  /** How host names are resolved (every address checked against the policy). Default: the system resolver. */
  lookup?: Lookup;
}

const isFunction = (value: unknown) => typeof value === "function";
/** The options checked here; `allowedNetworks` is checked by the policy, job defaults by `defineTask` and enqueue. */
const optionsSchema = z.object({
  allowPrivateNetworks: z.boolean().optional(),
  secrets: z
    .record(
      z.string(),
      z.custom((value) => value === undefined || typeof value === "string" || isFunction(value), {
        error: "a secret is a string, undefined (not set), or a function that returns one",
      }),
      { error: "must be an object of secret name -> value" },
    )
    .optional(),
  maxRetryAfterMs: z.int().min(0).max(RETRY_AFTER_MAX_MS).optional(),
  lookup: z.custom(isFunction, { error: "must be a function (hostname) => Promise<{ address, family }[]>" }).optional(),
});

const TASK_DEFAULT_KEYS = new Set(["queue", "priority", "maxAttempts", "backoff"]);

/** A failed request that a later attempt may fix (network error, timeout, 5xx, 408, 429 without `Retry-After`). */
class HttpRequestError extends PunctualError {
  override name = "HttpRequestError";
  constructor(
    message: string,
    readonly result: HttpResult,
  ) {
    super(message);
  }
}

/** Statuses a later attempt may fix: the server timed out waiting for the request, asked to slow down, or failed. */
function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Headers dropped on a redirect to another origin, as fetch drops them, beside the secret ones. */
const CREDENTIAL_HEADERS = new Set(["authorization", "cookie", "proxy-authorization"]);
/** How much of a URL `result` and messages keep. */
const URL_MAX = 512;

const shortUrl = (href: string) => (href.length > URL_MAX ? `${href.slice(0, URL_MAX)}…` : href);

/**
 * A `punctual.http` task for this worker's configuration. Every task it returns is
 * named `punctual.http` and takes the same payload; enqueue with any of them (or with
 * `httpRequest`), and give a worker the one configured for it. A worker runs HTTP jobs
 * only when its `tasks` include one.
 *
 * Safe by default: it connects to public addresses only, checked on every address
 * actually connected to (see `guardedAgent`); `allowPrivateNetworks` adds loopback,
 * RFC 1918, carrier-grade NAT and IPv6 unique local addresses; `allowedNetworks` adds
 * the networks it lists, whatever they are (metadata services included).
 *
 * @example
 * const worker = createWorker({
 *   pool,
 *   tasks: [httpTask({ allowedNetworks: ["10.20.0.0/16"], secrets: { PING_TOKEN: process.env.PING_TOKEN } })],
 * });
 */
export function httpTask(options: HttpTaskOptions = {}): Task<typeof httpRequestPayload> {
  if (typeof options !== "object" || options === null) throw new ValidationError("options", "httpTask takes an options object");
  const { allowPrivateNetworks, allowedNetworks, secrets, maxRetryAfterMs, lookup, ...defaults } = options;
  // A misspelt option (allowPrivateNetwork) must not pass silently as a job default.
  const unknown = Object.keys(defaults).find((key) => !TASK_DEFAULT_KEYS.has(key));
  if (unknown !== undefined) {
    throw new ValidationError(unknown, `is not an option of httpTask; options: allowPrivateNetworks, allowedNetworks, secrets, maxRetryAfterMs, lookup, ${[...TASK_DEFAULT_KEYS].join(", ")}`);
  }
  const checked = optionsSchema.safeParse({ allowPrivateNetworks, secrets, maxRetryAfterMs, lookup });
  if (!checked.success) throw zodError("", checked.error);
  const policy = new AddressPolicy({ allowPrivateNetworks, allowedNetworks });
  let agent: Promise<Agent> | undefined;
  const config: RunConfig = {
    secrets: secrets ?? {},
    maxRetryAfterMs: maxRetryAfterMs ?? HTTP_RETRY_AFTER_MAX_MS,
    // Made at the first request: a task defined only to enqueue opens nothing.
    agent: () => (agent ??= guardedAgent(policy, lookup)),
  };
  return defineTask({
    ...defaults,
    name: HTTP_TASK_NAME,
    payload: httpRequestPayload,
    storeResult: true,
    run: (payload, ctx) => send(payload, ctx, config),
  });
}

/**
 * The built-in HTTP task with the default configuration (public addresses only, no
 * secrets): enqueue and schedule `punctual.http` jobs with it, and give it to workers
 * that need nothing more. See `httpTask` for the options, and the README's "HTTP
 * requests on a schedule" for the behaviour.
 *
 * @example
 * await punctual.schedule("ping-reports", httpRequest, { url: "https://api.example.com/jobs/reports", method: "POST" }, { every: "10m" });
 */
export const httpRequest: Task<typeof httpRequestPayload> = httpTask();

interface RunConfig {
  secrets: Secrets;
  maxRetryAfterMs: number;
  agent: () => Promise<Agent>;
}

/** The request body, encoded, with the content type it implies. */
function encodeBody(body: HttpRequest["body"]): { text: string; contentType: string } | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return { text: body, contentType: "text/plain; charset=utf-8" };
  return { text: JSON.stringify(body), contentType: "application/json" };
}

/**
 * Sends one `punctual.http` job's request and follows its redirects. Returns the result
 * on a success status; otherwise throws an error carrying the same result: retryable
 * (network error, timeout, 408, 429, 5xx; with `Retry-After` as a `RetryAfterError`),
 * or a `PermanentError` (any other status, a refused address, too many redirects).
 */
async function send(payload: HttpRequest, ctx: JobContext, config: RunConfig): Promise<HttpResult> {
  const [{ request }, dispatcher] = await Promise.all([loadUndici(), config.agent()]);
  const { headers: secretHeaders, resolved } = await resolveSecretHeaders(payload.secretHeaders, config.secrets);
  const redact = secretRedactor(resolved);
  const started = performance.now();
  const timeout = AbortSignal.timeout(payload.timeoutMs);
  const signal = AbortSignal.any([ctx.signal, timeout]);
  let url = new URL(payload.url);
  let method: string = payload.method;
  let body = encodeBody(payload.body);
  let withCredentials = true;
  const redirects: string[] = [];
  const base = (): HttpResult => ({
    method,
    url: shortUrl(redact(url.href)),
    ok: false,
    durationMs: Math.round(performance.now() - started),
    ...(redirects.length > 0 && { redirects: [...redirects] }),
  });
  const what = () => `${method} ${shortUrl(redact(url.href))}`;

  const headers = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(payload.headers)) {
      const lower = name.toLowerCase();
      if (!withCredentials && CREDENTIAL_HEADERS.has(lower)) continue;
      if (!body && lower === "content-type") continue;
      out[name] = value;
    }
    // Secret headers go to the origin the job named, never to another one a redirect names.
    if (withCredentials) Object.assign(out, secretHeaders);
    const names = new Set(Object.keys(out).map((name) => name.toLowerCase()));
    if (!names.has("user-agent")) out["user-agent"] = "punctual";
    if (body && !names.has("content-type")) out["content-type"] = body.contentType;
    return out;
  };

  try {
    for (;;) {
      const response = await request(url, {
        dispatcher,
        method,
        headers: headers(),
        body: body?.text,
        signal,
      });
      const status = response.statusCode;
      const ok = statusMatches(status, payload.successStatuses);
      const location = response.headers.location;
      if (!ok && REDIRECT_STATUSES.has(status) && typeof location === "string" && payload.maxRedirects > 0) {
        await response.body.dump({ limit: 65_536 }).catch(() => {});
        if (redirects.length >= payload.maxRedirects) {
          const message = `${what()}: more than ${payload.maxRedirects} redirects (maxRedirects)`;
          throw new PermanentError(message, { result: fitResult({ ...base(), status, error: message }) });
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          next = new URL("invalid:");
        }
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          const message = `${what()}: redirected (${status}) to something that is not an http(s) URL: ${shortUrl(redact(location))}`;
          throw new PermanentError(message, { result: fitResult({ ...base(), status, error: message }) });
        }
        if (next.origin !== url.origin) withCredentials = false;
        // As browsers and fetch do: 303 turns any method but HEAD into GET, and 301/302 turn POST into GET.
        if ((status === 303 && method !== "HEAD") || ((status === 301 || status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        url = next;
        redirects.push(shortUrl(redact(url.href)));
        ctx.logger.debug({ status, location: shortUrl(redact(url.href)) }, "http task: following a redirect");
        continue;
      }

      const { bytes, more } = await readStart(response.body, payload.maxResponseBytes, longestSecretBytes(resolved) + 4);
      if (more) response.body.destroy();
      const excerpt = bodyExcerpt(bytes, payload.maxResponseBytes, more, redact);
      const kept = keptHeaders(response.headers);
      for (const name of Object.keys(kept)) kept[name] = redact(kept[name]!);
      const result = fitResult({
        ...base(),
        status,
        ok,
        headers: kept,
        ...(excerpt.text !== "" && { body: excerpt.text }),
        ...(excerpt.cut && { bodyTruncated: true as const }),
      });
      ctx.logger.debug({ method, status, durationMs: result.durationMs }, "http task: response");
      if (ok) return result;
      const message = `${what()}: ${status} ${STATUS_CODES[status] ?? ""}`.trimEnd();
      if (!retryableStatus(status)) {
        throw new PermanentError(`${message} (not retried: only 408, 429 and 5xx are)`, { result });
      }
      const retryAfter = parseRetryAfter(firstHeader(response.headers["retry-after"]), responseNow(response.headers.date));
      if (retryAfter !== undefined) {
        const delay = Math.min(retryAfter, config.maxRetryAfterMs);
        throw new RetryAfterError(`${message} (Retry-After: next attempt in ${delay} ms)`, delay, {
          result: fitResult({ ...result, retryAfterMs: delay }),
        });
      }
      throw new HttpRequestError(message, result);
    }
  } catch (error) {
    if (error instanceof PermanentError || error instanceof RetryAfterError || error instanceof HttpRequestError) throw error;
    // Aborted by the worker (stop past its drain timeout, cancel, lost lease): its reason.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (timeout.aborted) {
      const message = `${what()}: no complete response within ${payload.timeoutMs} ms (timeoutMs)`;
      throw new HttpRequestError(message, fitResult({ ...base(), error: message }));
    }
    const refused = addressRefusal(error);
    if (refused) {
      const message = `${what()}: refused: ${refused.message}`;
      throw new PermanentError(message, { result: fitResult({ ...base(), error: message }) });
    }
    // Undici's own errors say what failed (ECONNREFUSED, a reset, a TLS failure); their
    // message is redacted, and the error is not kept as a cause, which logs would print.
    const code = (error as { code?: unknown }).code;
    const text = redact(error instanceof Error ? error.message : String(error));
    const message = `${what()}: ${text}${typeof code === "string" && !text.includes(code) ? ` (${code})` : ""}`;
    if ((error as { name?: unknown }).name === "InvalidArgumentError") {
      throw new PermanentError(message, { result: fitResult({ ...base(), error: message }) });
    }
    throw new HttpRequestError(message, fitResult({ ...base(), error: message }));
  }
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
