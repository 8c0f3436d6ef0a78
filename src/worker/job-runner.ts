import type { Logger } from "../logger.js";
import { handlerRetryDelayMs, isPermanentFailure, LeaseLostError, thrownResult, ValidationError } from "../errors.js";
import { toQueryable, type Executor } from "../executor.js";
import { isMissed, nextOccurrence, nextRunAt } from "../schedule/next.js";
import { ruleFromColumns, type Rule } from "../schedule/rule.js";
import { jobCompleteMany, type ClaimedRow } from "../sql/jobs.js";
import { loadedTracing, loadTracing } from "../otel.js";
import { isThenable, parsePayload, type AnyTask, type JobContext } from "../tasks.js";
import { retryDelayMs, type BackoffOptions } from "./backoff.js";
import type { OutcomeBatcher, RecordedState, Success } from "./outcome-batcher.js";
import type { JobEvent, WorkerEvents } from "./events.js";

/**
 * A job's abort signal, made only when something asks for it: a handler that reads
 * `ctx.signal`, or a cancel, lease loss or drain timeout. Most jobs never need one, and
 * an AbortController costs more than the rest of a short job's start.
 */
export class LazyAbort {
  private controller: AbortController | undefined;
  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }
  get aborted(): boolean {
    return this.controller?.signal.aborted ?? false;
  }
  abort(reason: Error): void {
    (this.controller ??= new AbortController()).abort(reason);
  }
}

/** A job this worker holds: claimed, waiting in its buffer or running. */
export interface Running {
  job: JobEvent;
  abort: LazyAbort;
  done: Promise<void>;
  /** Set when the job left this worker (handed back on stop, or its lease was lost): its late outcome is not recorded. */
  released: boolean;
  /** When its handler started (`performance.now()`); null while it waits in the buffer. */
  startedAt: number | null;
  /** Whether the row's `started_at` is written (by the claim, or by a lease renewal since). */
  startRecorded: boolean;
  /**
   * Until when its lease is known to hold (`performance.now()`): the send time of the
   * claim or renewal that last confirmed it, plus the lease. The database set the
   * lease after that statement was sent, so this errs early, whatever the clocks say.
   */
  leaseUntil: number;
}

/**
 * How long ago the handler started, for an outcome, if the row does not say yet. Whole
 * milliseconds, rounded down: `started_at` (the database's now() less this) may come
 * out late, never before the job's run_at.
 */
function startedAgo(entry: Running): number | null {
  return entry.startRecorded || entry.startedAt === null ? null : Math.floor(performance.now() - entry.startedAt);
}

type Emit = <E extends keyof WorkerEvents>(event: E, ...args: WorkerEvents[E]) => void;

/**
 * Runs one claimed job to its recorded outcome: places periodic rows that need a slot,
 * checks the payload, calls the handler, computes the next occurrence, and hands the
 * outcome to the batcher. Reports through the worker's events and logs.
 */
export class JobRunner {
  constructor(
    private readonly outcomes: OutcomeBatcher,
    private readonly backoff: BackoffOptions,
    private readonly emit: Emit,
    /** Whether anything listens to a worker event: its payload is not made otherwise. */
    private readonly listening: (event: keyof WorkerEvents) => boolean,
    /** The worker's logger; each job's is a child of it, made when something logs. */
    private readonly logger: Logger,
  ) {
    // Starts the one import of OpenTelemetry (a no-op without it) before the first job.
    void loadTracing();
  }

  /**
   * `handlerDone` is called as soon as the handler returned (or the row was placed),
   * before the outcome is written: the slot is free for the next claim while the
   * outcome waits for its batch.
   */
  async run(
    task: AnyTask,
    row: ClaimedRow,
    job: JobEvent,
    entry: Running,
    handlerDone: () => void,
  ): Promise<void> {
    const rule = ruleFromColumns(row);
    const ctx = new RunContext(this, row, job, entry, rule, this.logger);
    let failure: { error: Error; retryable: boolean; retryAfterMs?: number; result?: unknown } | null = null;
    /** What the handler returned: kept in the row's `result` when the task says `storeResult`. */
    let returned: unknown;
    if (rule) {
      // A periodic row: place it first when it has no slot yet (written by SQL), or when
      // the skip policy says a missed occurrence does not run.
      try {
        const now = new Date();
        ctx.job.late = isMissed(rule, row.slot_at, now);
        const placeAt = !row.slot_at
          ? nextRunAt(rule, now)
          : ctx.job.late && row.missed === "skip"
            ? nextOccurrence(rule, "skip", row.slot_at, now)
            : null;
        if (placeAt) {
          handlerDone();
          const state = await this.outcomes.place({ id: job.id, attempt: job.attempt, slot: placeAt });
          if (state === "lost") this.emit("job:lost", job);
          else if (state === "unrecorded") return;
          else if (row.slot_at) {
            ctx.logger.warn({ slot: row.slot_at, next: placeAt }, "missed occurrence skipped");
            this.emit("job:skipped", job, { slot: row.slot_at, next: placeAt });
          } else {
            ctx.logger.debug({ slot: placeAt }, "schedule placed on its first slot");
            this.emit("job:placed", job, { slot: placeAt });
          }
          return;
        }
      } catch (error) {
        // Only a rule written by SQL can be invalid (the client validates): fail clearly.
        failure = { error: new ValidationError("rule", `cannot be evaluated: ${toError(error).message}`), retryable: false };
      }
    }
    if (!failure && entry.abort.aborted) {
      // Cancelled while it waited in the buffer: it does not start. The row says cancelled.
      failure = { error: toError(entry.abort.signal.reason), retryable: false };
    }
    /** When the job started (`job:claimed`), for its run duration; null if it never did. */
    let startedAt: number | null = null;
    if (!failure) {
      startedAt = performance.now();
      if (this.listening("job:claimed")) this.emit("job:claimed", job, { runAt: row.run_at });
      // Awaited only when the schema is asynchronous (a microtask per job otherwise).
      const check = parsePayload(task.payload, row.payload, "payload");
      const parsed = isThenable(check) ? await check : check;
      if (!parsed.success) {
        // Written by SQL with a payload that fails the schema: no retry can fix that.
        const error = parsed.error;
        failure = { error: new ValidationError(error.field, `does not match task "${task.name}": ${error.message}`), retryable: false };
      } else {
        // With OpenTelemetry, the handler runs in a span of its own (src/otel.ts).
        const tracing = loadedTracing() ?? (await loadTracing());
        try {
          const out = tracing.runJob(task, parsed.data, ctx, row.trace_context);
          returned = isThenable(out) ? await out : out;
        } catch (thrown) {
          // The error may steer the outcome: no retry (PermanentError), when to retry
          // (RetryAfterError), what to keep in `result`.
          failure = {
            error: toError(thrown),
            retryable: !isPermanentFailure(thrown),
            retryAfterMs: handlerRetryDelayMs(thrown),
            result: task.storeResult ? thrownResult(thrown) : undefined,
          };
        }
      }
    }
    const durationMs = startedAt === null ? undefined : performance.now() - startedAt;
    handlerDone();
    if (entry.released) return;
    if (!failure) {
      const result = task.storeResult ? returned : undefined;
      let state = await this.outcomes.success(this.success(row, job, entry, this.nextSlot(rule, row, null), result));
      // Completed in the handler's transaction (`ctx.complete`): if it committed, the
      // row is no longer running and this fenced write, batched as usual, finds nothing
      // to do; that is the success. (If it rolled back, this write records the success,
      // as for any handler that returns. Only if it rolled back and the lease was lost
      // too would "succeeded" be reported for a job another worker now runs.)
      if (ctx.completedInTransaction && state === "lost") state = "succeeded";
      this.report(job, ctx, state, null, durationMs);
      return;
    }
    const delay = failure.retryAfterMs ?? retryDelayMs(job.attempt, task.backoff ?? this.backoff);
    const state = await this.outcomes.failure({
      ...this.success(row, job, entry, this.nextSlot(rule, row, failure), failure.result),
      message: failure.error.message,
      stack: failure.error.stack ?? null,
      retry_delay_ms: delay,
      retryable: failure.retryable,
    });
    this.report(job, ctx, state, { error: failure.error, runAt: new Date(Date.now() + delay) }, durationMs);
  }

  /**
   * An outcome as the statements take it: the job, the slot of its next occurrence with
   * the rule it was computed from (a statement inserts it only if the row's rule is
   * still that one), when its handler started, and what to keep in `result`.
   */
  private success(row: ClaimedRow, job: JobEvent, entry: Running, nextSlot: Date | null, result: unknown): Success {
    return {
      id: job.id,
      attempt: job.attempt,
      next_slot: nextSlot,
      cron: row.cron,
      tz: row.tz,
      every_ms: row.every_ms,
      fixed_delay: row.fixed_delay,
      started_ago_ms: startedAgo(entry),
      result,
    };
  }

  /**
   * Records a success in the caller's transaction `tx` (`ctx.complete`): the statement
   * the batcher runs, with the same fence (still running, ours, this attempt) and the
   * next occurrence. Throws LeaseLostError when the job is no longer this worker's.
   */
  async completeIn(tx: Executor, row: ClaimedRow, job: JobEvent, entry: Running, rule: Rule | null): Promise<void> {
    if (entry.released) throw new LeaseLostError(job.id);
    const [done] = await jobCompleteMany(
      toQueryable(tx),
      this.outcomes.workerId,
      [this.success(row, job, entry, this.nextSlot(rule, row, null), undefined)],
      this.outcomes.deleteSucceeded,
    );
    if (!done) throw new LeaseLostError(job.id);
    if (done.nextRunAt) this.outcomes.onRunAgainAt(done.nextRunAt, done.dbNow ?? undefined);
  }

  /**
   * The slot of the occurrence after this one, computed now, as the outcome is
   * recorded (the statement only uses it when the job finished for good).
   */
  private nextSlot(rule: Rule | null, row: ClaimedRow, failure: { error: Error } | null): Date | null {
    if (!rule || failure?.error instanceof ValidationError && failure.error.field === "rule") return null;
    return nextOccurrence(rule, row.missed, row.slot_at, new Date());
  }

  private report(
    job: JobEvent,
    ctx: RunContext,
    state: RecordedState,
    failed: { error: Error; runAt: Date } | null,
    durationMs: number | undefined,
  ) {
    if (state === "succeeded") {
      // Debug: at thousands of jobs a second an info line per job would be most of the
      // worker's work, and of the logs. Failures and retries stay loud.
      if (this.logger.isLevelEnabled("debug")) ctx.logger.debug({ attempt: job.attempt }, "job succeeded");
      if (this.listening("job:succeeded")) this.emit("job:succeeded", job, { durationMs: durationMs ?? 0 });
      return;
    }
    const logger = ctx.logger;
    switch (state) {
      case "pending":
        logger.warn({ attempt: job.attempt, err: failed!.error, retryAt: failed!.runAt }, "job failed; will retry");
        this.emit("job:retried", job, { ...failed!, durationMs: durationMs ?? 0 });
        return;
      case "failed":
      case "cancelled":
        logger.error({ attempt: job.attempt, err: failed?.error }, `job ${state}`);
        this.emit("job:failed", job, { error: failed?.error ?? new Error(state), state, durationMs });
        return;
      case "unrecorded":
        logger.error({ attempt: job.attempt }, "outcome could not be written; the job runs again once its lease expires");
        return;
      case "lost":
        logger.warn("outcome not recorded: the job is no longer leased to this worker");
        this.emit("job:lost", job);
    }
  }
}

/**
 * What a handler gets as `ctx`: one object per job, its accessors on the prototype (no
 * closures made per job: a short job's start costs little more than its handler) and
 * the worker's state in private fields (a handler that logs or spreads `ctx` sees only
 * `job`).
 */
class RunContext implements JobContext {
  readonly job: JobContext["job"];
  readonly #runner: JobRunner;
  readonly #row: ClaimedRow;
  readonly #event: JobEvent;
  readonly #entry: Running;
  readonly #rule: Rule | null;
  readonly #workerLogger: Logger;
  #logger: Logger | undefined;
  #completed = false;

  constructor(runner: JobRunner, row: ClaimedRow, event: JobEvent, entry: Running, rule: Rule | null, workerLogger: Logger) {
    this.#runner = runner;
    this.#row = row;
    this.#event = event;
    this.#entry = entry;
    this.#rule = rule;
    this.#workerLogger = workerLogger;
    this.job = {
      id: event.id,
      task: event.task,
      queue: event.queue,
      key: event.key,
      priority: row.priority,
      attempt: event.attempt,
      maxAttempts: event.maxAttempts,
      runAt: row.run_at,
      slot: row.slot_at,
      late: false,
    };
  }

  get signal(): AbortSignal {
    return this.#entry.abort.signal;
  }

  /**
   * Bound to the job when something logs: a child logger per job costs more than a
   * no-op job's start, and a success logs at debug only.
   */
  get logger(): Logger {
    return (this.#logger ??= this.#workerLogger.child({ job: this.#event.id, task: this.#event.task }));
  }

  /** A function of its own, made when asked: handlers may take it out of `ctx` (`{ complete }`). */
  get complete(): (tx: Executor) => Promise<void> {
    return async (tx) => {
      await this.#runner.completeIn(tx, this.#row, this.#event, this.#entry, this.#rule);
      this.#completed = true;
    };
  }

  /** Whether `complete(tx)` recorded the success (its transaction may still roll back). */
  get completedInTransaction(): boolean {
    return this.#completed;
  }
}

/** Any thrown value as an Error. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(typeof value === "string" ? value : JSON.stringify(value));
}
