import type { Queryable } from "../executor.js";
import type { JobState } from "../schema.js";
import { jobCompleteMany, jobFailMany, type JobFailure } from "../sql/jobs.js";

/** What became of a recorded outcome: the job's new state, or `lost` when fenced out. */
export type RecordedState = JobState | "lost";

type Pending =
  | { kind: "success"; id: number; resolve: (state: RecordedState) => void }
  | { kind: "failure"; failure: JobFailure; resolve: (state: RecordedState) => void };

/**
 * Collects job outcomes and writes them in batches: while one batch is being written,
 * the next accumulates, so under load one round trip records many jobs and when idle
 * an outcome is written at once. A write that fails (the database is away) is retried
 * with the same outcomes; none is dropped.
 */
export class OutcomeBatcher {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly db: Queryable,
    private readonly workerId: string,
    private readonly onError: (error: unknown) => void,
    private readonly retryDelayMs = 1000,
  ) {}

  /** Records a success; resolves once it is written. */
  success(id: number): Promise<RecordedState> {
    return new Promise((resolve) => this.push({ kind: "success", id, resolve }));
  }

  /** Records a failed attempt; resolves with the state the job went to. */
  failure(failure: JobFailure): Promise<RecordedState> {
    return new Promise((resolve) => this.push({ kind: "failure", failure, resolve }));
  }

  /** Resolves when everything recorded so far is written. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private push(item: Pending) {
    this.queue.push(item);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = null;
    });
  }

  private async flush() {
    // Yield once so that outcomes finishing in the same tick share the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.write(batch);
      } catch (error) {
        this.onError(error);
        this.queue = batch.concat(this.queue);
        await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs));
      }
    }
  }

  private async write(batch: Pending[]) {
    const successes = batch.filter((p) => p.kind === "success");
    const failures = batch.filter((p) => p.kind === "failure");
    const [done, failed] = await Promise.all([
      successes.length ? jobCompleteMany(this.db, this.workerId, successes.map((s) => s.id)) : [],
      failures.length ? jobFailMany(this.db, this.workerId, failures.map((f) => f.failure)) : [],
    ]);
    const succeeded = new Set(done);
    const failedState = new Map(failed.map((row) => [Number(row.id), row.state]));
    for (const s of successes) s.resolve(succeeded.has(s.id) ? "succeeded" : "lost");
    for (const f of failures) f.resolve(failedState.get(f.failure.id) ?? "lost");
  }
}
