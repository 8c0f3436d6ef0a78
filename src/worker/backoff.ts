/** Retry delays: exponential from `baseMs`, capped at `maxMs`, with jitter. */
export interface BackoffOptions {
  /** Delay before the first retry, before jitter. Default 1,000 ms. */
  baseMs?: number;
  /** Longest delay. Default one hour. */
  maxMs?: number;
}

export const DEFAULT_BACKOFF = { baseMs: 1000, maxMs: 60 * 60 * 1000 } as const;

/**
 * The delay before retrying after failed attempt number `attempt` (1-based):
 * base * 2^(attempt-1), capped, then scaled by a random factor in [0.5, 1] so that
 * jobs that failed together (an outage) do not all retry in the same millisecond.
 */
export function retryDelayMs(attempt: number, options: BackoffOptions = {}, random = Math.random): number {
  const baseMs = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exponential * (0.5 + random() / 2));
}
