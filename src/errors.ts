/** The base class of every error Punctual raises on purpose. */
export class PunctualError extends Error {
  override name = "PunctualError";
}

/**
 * Bad input: raised before anything is written. `field` names what was wrong, as a
 * dotted path (`payload.email`, `runAt`, `jobs.3.key`).
 */
export class ValidationError extends PunctualError {
  override name = "ValidationError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * `ctx.complete(tx)` found the job no longer held by this worker (its lease expired
 * and another worker took it over): the caller's transaction must roll back.
 */
export class LeaseLostError extends PunctualError {
  override name = "LeaseLostError";
  constructor(readonly jobId: number) {
    super(`job ${jobId} is no longer leased to this worker: roll back this transaction; another worker runs the job`);
  }
}

/** A task name that the client or worker was not given. */
export class UnknownTaskError extends ValidationError {
  override name = "UnknownTaskError";
  constructor(
    readonly task: string,
    known: readonly string[],
    field = "task",
  ) {
    super(field, `unknown task "${task}"; known tasks: ${known.length ? known.join(", ") : "(none)"}`);
  }
}

/** Options of the errors a handler throws to steer its job's outcome. */
export interface HandlerErrorOptions {
  /** The error that led to this one (kept as `error.cause`). */
  cause?: unknown;
  /**
   * What this attempt leaves for operators, stored in the row's `result` column with the
   * failure when the task has `storeResult: true` (JSON, at most `RESULT_MAX_BYTES`).
   */
  result?: unknown;
}

/**
 * Thrown by a handler, fails the job at once, whatever attempts remain: for failures no
 * retry can fix (the request is refused as malformed, the record is gone). The row ends
 * `failed` with this error as its `last_error`; a periodic job still gets its next
 * occurrence. The worker reads `permanent: true` from any thrown error, so an app's own
 * error class (or another copy of Punctual's) can say the same.
 *
 * @example
 * if (response.status === 404) throw new PermanentError(`order ${orderId} does not exist`);
 */
export class PermanentError extends PunctualError {
  override name = "PermanentError";
  /** Read by the worker: no retry. */
  readonly permanent = true;
  /** See `HandlerErrorOptions.result`. */
  readonly result?: unknown;
  constructor(message: string, options: HandlerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.result !== undefined) this.result = options.result;
  }
}

/**
 * Thrown by a handler, fails this attempt and sets when the next one runs, in place of
 * the backoff: `retryAfter` milliseconds from now, or a `Date`. For a service that said
 * when to come back (HTTP `Retry-After`, a rate limit's reset time). The attempt counts:
 * with none left the job ends `failed`. The delay is cut to 0 .. `RETRY_AFTER_MAX_MS`
 * (about 24.8 days). The worker reads `retryAfterMs` (a finite number) from any thrown
 * error, so an app's own error class can say the same.
 *
 * @example
 * if (limited) throw new RetryAfterError("rate limited by the mail API", resetAt);
 */
export class RetryAfterError extends PunctualError {
  override name = "RetryAfterError";
  /** Read by the worker: the delay before the next attempt, in milliseconds (never negative). */
  readonly retryAfterMs: number;
  /** See `HandlerErrorOptions.result`. */
  readonly result?: unknown;
  constructor(message: string, retryAfter: number | Date, options: HandlerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const ms = retryAfter instanceof Date ? retryAfter.getTime() - Date.now() : retryAfter;
    if (!Number.isFinite(ms)) throw new ValidationError("retryAfter", `must be a finite number of milliseconds or a valid Date, got ${String(retryAfter)}`);
    this.retryAfterMs = clampRetryAfter(ms);
    if (options.result !== undefined) this.result = options.result;
  }
}

/** The longest delay a handler can set for its retry: what the row's delay parameter holds (2^31 - 1 ms, about 24.8 days). */
export const RETRY_AFTER_MAX_MS = 2_147_483_647;

function clampRetryAfter(ms: number): number {
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(0, Math.round(ms)));
}

/** Whether a thrown value asks for no retry (`permanent: true`, as `PermanentError` has). */
export function isPermanentFailure(thrown: unknown): boolean {
  return typeof thrown === "object" && thrown !== null && (thrown as { permanent?: unknown }).permanent === true;
}

/**
 * The retry delay a thrown value sets (`retryAfterMs`, as `RetryAfterError` has), cut to
 * 0 .. `RETRY_AFTER_MAX_MS`; undefined when it sets none (the backoff applies).
 */
export function handlerRetryDelayMs(thrown: unknown): number | undefined {
  if (typeof thrown !== "object" || thrown === null) return undefined;
  const ms = (thrown as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof ms === "number" && Number.isFinite(ms) ? clampRetryAfter(ms) : undefined;
}

/** The `result` a thrown value carries for the row (see `HandlerErrorOptions.result`), if any. */
export function thrownResult(thrown: unknown): unknown {
  return typeof thrown === "object" && thrown !== null ? (thrown as { result?: unknown }).result : undefined;
}
