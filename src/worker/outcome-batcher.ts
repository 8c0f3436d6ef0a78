import type { Queryable } from "../executor.js";
import type { JobState } from "../schema.js";
import { jobCompleteMany, jobFailMany, jobPlaceMany, type JobFailure, type NextOccurrence } from "../sql/jobs.js";

/** What became of a recorded outcome: the job's new state, or `lost` when fenced out. */
export type RecordedState = JobState | "lost";

type Resolve = (state: RecordedState) => void;
type Success = { id: number } & NextOccurrence;
type Placement = { id: number; slot: Date };

/**
 * Collects job outcomes and writes them in batches: while one batch is being written,
 * the next accumulates, so under load one round trip records many jobs and when idle
 * an outcome is written at once. A write that fails (the database is away) is retried
 * with the same outcomes; none is dropped.
 */
export class OutcomeBatcher {
  private successes: [Success, Resolve][] = [];
  private failures: [JobFailure, Resolve][] = [];
  private placements: [Placement, Resolve][] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly db: Queryable,
    private readonly workerId: string,
    private readonly onError: (error: unknown) => void,
    private readonly retryDelayMs = 1000,
  ) {}

  /** Records a success; resolves with `succeeded` once written. */
  success(success: Success): Promise<RecordedState> {
    return new Promise((resolve) => this.push(this.successes, [success, resolve]));
  }

  /** Records a failed attempt; resolves with the state the job went to. */
  failure(failure: JobFailure): Promise<RecordedState> {
    return new Promise((resolve) => this.push(this.failures, [failure, resolve]));
  }

  /** Puts a claimed periodic row back on a slot without running it. */
  place(placement: Placement): Promise<RecordedState> {
    return new Promise((resolve) => this.push(this.placements, [placement, resolve]));
  }

  /**
   * Hands the successes waiting for a batch to the claim loop, which records them in
   * its claim statement (one round trip for both). It must call `settle` with the ids
   * written, or `giveBack` if the statement failed.
   */
  takeSuccesses(): { successes: Success[]; settle(written: readonly number[]): void; giveBack(): void } | null {
    if (this.successes.length === 0) return null;
    const taken = this.successes;
    this.successes = [];
    return {
      successes: taken.map(([s]) => s),
      settle: (written) => settleSuccesses(taken, written),
      giveBack: () => {
        for (const item of taken) this.push(this.successes, item);
      },
    };
  }

  /** Resolves when everything recorded so far is written. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private push<T>(queue: [T, Resolve][], item: [T, Resolve]) {
    queue.push(item);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = null;
    });
  }

  private async flush() {
    // Yield once so that outcomes finishing in the same tick share the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.successes.length + this.failures.length + this.placements.length > 0) {
      const batch = { successes: this.successes, failures: this.failures, placements: this.placements };
      this.successes = [];
      this.failures = [];
      this.placements = [];
      try {
        await this.write(batch);
      } catch (error) {
        this.onError(error);
        this.successes.unshift(...batch.successes);
        this.failures.unshift(...batch.failures);
        this.placements.unshift(...batch.placements);
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs));
      }
    }
  }

  private async write({ successes, failures, placements }: {
    successes: [Success, Resolve][];
    failures: [JobFailure, Resolve][];
    placements: [Placement, Resolve][];
  }) {
    const [done, failed, placed] = await Promise.all([
      successes.length ? jobCompleteMany(this.db, this.workerId, successes.map(([s]) => s)) : [],
      failures.length ? jobFailMany(this.db, this.workerId, failures.map(([f]) => f)) : [],
      placements.length ? jobPlaceMany(this.db, this.workerId, placements.map(([p]) => p)) : [],
    ]);
    settleSuccesses(successes, done);
    const failedState = new Map(failed.map((row) => [Number(row.id), row.state]));
    const wasPlaced = new Set(placed);
    for (const [f, resolve] of failures) resolve(failedState.get(f.id) ?? "lost");
    for (const [p, resolve] of placements) resolve(wasPlaced.has(p.id) ? "pending" : "lost");
  }
}

/** Resolves each success: written, or fenced out (`lost`). */
function settleSuccesses(successes: readonly [Success, Resolve][], written: readonly number[]) {
  const ok = new Set(written);
  for (const [s, resolve] of successes) resolve(ok.has(s.id) ? "succeeded" : "lost");
}
