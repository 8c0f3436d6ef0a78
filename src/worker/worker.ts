import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import pg from "pg";
import { z } from "zod";
import { createClient, type ScheduleSpec } from "../client.js";
import { toQueryable, type Queryable } from "../executor.js";
import { ValidationError } from "../errors.js";
import { createLogger, type Logger } from "../logger.js";
import { jobClaim, jobReleaseMany, type ClaimedRow } from "../sql/jobs.js";
import { TaskRegistry, zodError, type AnyTask, type JobContext } from "../tasks.js";
import { retryDelayMs, type BackoffOptions } from "./backoff.js";
import { isMissed, nextOccurrence, nextRunAt } from "../schedule/next.js";
import { ruleFromColumns, type Rule } from "../schedule/rule.js";
import { OutcomeBatcher, type RecordedState } from "./outcome-batcher.js";

export interface WorkerOptions {
  /** The tasks this worker runs. It claims only jobs of these tasks. */
  tasks: readonly AnyTask[];
  /** A pg Pool to use (the worker does not end it), or: */
  pool?: pg.Pool;
  /** a connection string: the worker makes its own small pool and ends it on `stop`. */
  connectionString?: string;
  /** Queues to serve. Default `["default"]`. */
  queues?: readonly string[];
  /** Handlers running at once. Default 10. */
  concurrency?: number;
  /** How often an idle worker looks for due jobs. Default 1,000 ms. */
  pollIntervalMs?: number;
  /** How long a claimed job is leased to this worker. Default 30,000 ms. */
  leaseMs?: number;
  /** Retry delays, unless the task sets its own. */
  backoff?: BackoffOptions;
  /** Default pino logger named "punctual". */
  logger?: Logger;
  /** Stored in `locked_by`. Default `hostname:pid:random`. */
  workerId?: string;
  /**
   * The app's declared periodic jobs. `start` reconciles them (see
   * `Client.reconcileSchedules`): every worker may do so at once, safely.
   */
  schedules?: readonly ScheduleSpec[];
}

/** A job as events report it. */
export interface JobEvent {
  id: number;
  task: string;
  queue: string;
  key: string | null;
  attempt: number;
  maxAttempts: number;
}

/** Events a worker emits; tests and apps await them instead of polling the table. */
export interface WorkerEvents {
  /** A job was claimed and its handler is starting. */
  "job:claimed": [JobEvent];
  /** A job's success was recorded. */
  "job:succeeded": [JobEvent];
  /** An attempt failed and the job is pending again, due at `runAt`. */
  "job:retried": [JobEvent, { error: Error; runAt: Date }];
  /** A job ended `failed` (or `cancelled`, when a cancel was requested while it ran). */
  "job:failed": [JobEvent, { error: Error; state: "failed" | "cancelled" }];
  /** A periodic row written without a slot (by SQL, or after a rule change) was placed on its first slot. */
  "job:placed": [JobEvent, { slot: Date }];
  /** A missed periodic occurrence was not run (policy `skip`); the schedule moved to `next`. */
  "job:skipped": [JobEvent, { slot: Date; next: Date }];
  /** The outcome was not recorded: the job no longer runs under this worker's lease. */
  "job:lost": [JobEvent];
  /** A claim finished: how many jobs it took and how many slots were free. */
  "worker:poll": [{ claimed: number; free: number }];
  /** A database or internal error; the worker carries on. */
  "worker:error": [Error];
  /** `stop` finished: nothing runs, every outcome is written. */
  "worker:stopped": [];
}

const optionsSchema = z.object({
  queues: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "queue names are 1-64 letters, digits or _ . : -")).min(1).default(["default"]),
  concurrency: z.int().min(1).max(1000).default(10),
  pollIntervalMs: z.int().min(10).max(3_600_000).default(1000),
  leaseMs: z.int().min(1000).max(86_400_000).default(30_000),
});

interface Running {
  job: JobEvent;
  controller: AbortController;
  done: Promise<void>;
  /** Set when stop handed the job back; its late outcome is not recorded. */
  released: boolean;
}

/**
 * Claims due jobs and runs their handlers.
 *
 * @example
 * const worker = createWorker({ connectionString, tasks: [sendEmail], concurrency: 20 });
 * worker.on("job:failed", (job, { error }) => alert(job, error));
 * await worker.start();
 * // ... on shutdown:
 * await worker.stop({ timeoutMs: 10_000 });
 */
export class Worker extends EventEmitter<WorkerEvents> {
  readonly id: string;
  private readonly registry: TaskRegistry;
  private readonly options: z.output<typeof optionsSchema>;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly db: Queryable;
  private readonly logger: Logger;
  private readonly backoff: BackoffOptions;
  private readonly outcomes: OutcomeBatcher;
  private readonly running = new Map<number, Running>();
  private loop: Promise<void> | null = null;
  private stopping = false;
  /** Wakes the claim loop from its wait; set only while it waits. */
  private wake: (() => void) | null = null;
  private waitingForSlot = false;
  private readonly schedules: readonly ScheduleSpec[] | undefined;

  constructor(options: WorkerOptions) {
    super();
    if (!options.tasks?.length) throw new ValidationError("tasks", "a worker needs at least one task");
    this.registry = new TaskRegistry(options.tasks);
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) throw zodError("", parsed.error);
    this.options = parsed.data;
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
    } else if (options.connectionString) {
      // Claims, outcome writes and release share the pool; a few connections suffice.
      this.pool = new pg.Pool({ connectionString: options.connectionString, max: 4 });
      this.ownsPool = true;
    } else {
      throw new ValidationError("pool", "give a pg Pool or a connectionString");
    }
    // An idle client that loses its connection emits 'error' on the pool; without a
    // listener Node would exit. The next query gets a fresh connection.
    this.pool.on("error", (error) => this.reportError(error));
    this.db = toQueryable(this.pool);
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.logger = (options.logger ?? createLogger()).child({ worker: this.id });
    this.backoff = options.backoff ?? {};
    this.schedules = options.schedules;
    this.outcomes = new OutcomeBatcher(this.db, this.id, (error) => this.reportError(error));
  }

  /** Starts claiming. Resolves at once; the worker runs until `stop`. */
  async start(): Promise<void> {
    if (this.loop) return;
    if (this.schedules) {
      const client = createClient({ executor: this.pool, tasks: this.registry.all() });
      const counts = await client.reconcileSchedules(this.schedules);
      this.logger.info(counts, "declared schedules reconciled");
    }
    this.logger.info(
      { queues: this.options.queues, tasks: this.registry.names(), concurrency: this.options.concurrency },
      "worker started",
    );
    this.loop = this.claimLoop();
  }

  /**
   * Stops claiming, waits up to `timeoutMs` (default 10 s) for running handlers, then
   * aborts the rest through their `AbortSignal` and hands their jobs back to pending at
   * once, so another worker can take them without waiting for the lease to expire.
   * Resolves when every outcome is written.
   */
  async stop({ timeoutMs = 10_000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.wake?.();
    await this.loop;
    if (this.running.size > 0) {
      this.logger.info({ running: this.running.size, timeoutMs }, "waiting for running jobs");
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([Promise.all([...this.running.values()].map((r) => r.done)), timedOut]);
      clearTimeout(timer);
    }
    const unfinished = [...this.running.values()];
    if (unfinished.length > 0) {
      for (const r of unfinished) {
        r.released = true;
        r.controller.abort(new Error("worker stopping: drain timeout passed"));
      }
      const ids = unfinished.map((r) => r.job.id);
      try {
        await jobReleaseMany(this.db, this.id, ids);
        this.logger.warn({ jobs: ids }, "handed unfinished jobs back to pending");
      } catch (error) {
        this.reportError(error);
      }
    }
    await this.outcomes.drain();
    if (this.ownsPool) await this.pool.end();
    this.logger.info("worker stopped");
    this.emit("worker:stopped");
  }

  /**
   * The claim loop. It never claims more than the free slots: a claimed job is leased
   * to this worker, and one waiting here for a slot would sit leased while another
   * worker with free slots could have run it.
   */
  private async claimLoop(): Promise<void> {
    while (!this.stopping) {
      const free = this.options.concurrency - this.running.size;
      let claimed = 0;
      if (free > 0) {
        try {
          claimed = await this.claim(free);
        } catch (error) {
          this.reportError(error);
        }
      }
      if (this.stopping) break;
      if (free === 0 || claimed === free) {
        // Every slot is busy, and more may be due: claim again when one frees up.
        await this.wait(null);
      } else {
        // Fewer due jobs than free slots: nothing more is due now.
        await this.wait(this.options.pollIntervalMs);
      }
    }
  }

  private async claim(limit: number): Promise<number> {
    const rows = await jobClaim(this.db, {
      workerId: this.id,
      queues: this.options.queues,
      tasks: this.registry.names(),
      limit,
      leaseMs: this.options.leaseMs,
    });
    for (const row of rows) this.startJob(row);
    this.emit("worker:poll", { claimed: rows.length, free: limit });
    return rows.length;
  }

  /** Waits for `ms` (or, with null, until a slot frees); `stop` ends any wait. */
  private wait(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === null ? undefined : setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        this.waitingForSlot = false;
        resolve();
      };
      this.waitingForSlot = ms === null;
      this.wake = done;
    });
  }

  private startJob(row: ClaimedRow) {
    const job: JobEvent = {
      id: Number(row.id),
      task: row.task,
      queue: row.queue,
      key: row.key,
      attempt: row.attempts,
      maxAttempts: row.max_attempts,
    };
    const controller = new AbortController();
    const entry: Running = { job, controller, released: false, done: Promise.resolve() };
    this.running.set(job.id, entry);
    entry.done = this.runJob(row, job, entry).finally(() => {
      this.running.delete(job.id);
      if (this.waitingForSlot) this.wake?.();
    });
  }

  private async runJob(row: ClaimedRow, job: JobEvent, entry: Running): Promise<void> {
    const task = this.registry.get(row.task)!; // the claim only returns tasks we know
    const logger = this.logger.child({ job: job.id, task: job.task });
    const rule = ruleFromColumns(row);
    const fingerprint = { cron: row.cron, tz: row.tz, every_ms: row.every_ms, fixed_delay: row.fixed_delay };
    let failure: { error: Error; retryable: boolean } | null = null;
    let late = false;
    if (rule) {
      // A periodic row: place it first when it has no slot yet (written by SQL), or when
      // the skip policy says a missed occurrence does not run.
      try {
        const now = new Date();
        late = isMissed(rule, row.slot_at, now);
        const placeAt = !row.slot_at
          ? nextRunAt(rule, now)
          : late && row.missed === "skip"
            ? nextOccurrence(rule, "skip", row.slot_at, now)
            : null;
        if (placeAt) {
          const state = await this.outcomes.place({ id: job.id, slot: placeAt });
          if (state === "lost") this.emit("job:lost", job);
          else if (row.slot_at) {
            logger.warn({ slot: row.slot_at, next: placeAt }, "missed occurrence skipped");
            this.emit("job:skipped", job, { slot: row.slot_at, next: placeAt });
          } else {
            logger.info({ slot: placeAt }, "schedule placed on its first slot");
            this.emit("job:placed", job, { slot: placeAt });
          }
          return;
        }
      } catch (error) {
        // Only a rule written by SQL can be invalid (the client validates): fail clearly.
        failure = { error: new ValidationError("rule", `cannot be evaluated: ${toError(error).message}`), retryable: false };
      }
    }
    if (!failure) {
      this.emit("job:claimed", job);
      const parsed = task.payload.safeParse(row.payload);
      if (!parsed.success) {
        // Written by SQL with a payload that fails the schema: no retry can fix that.
        const error = zodError("payload", parsed.error);
        failure = { error: new ValidationError(error.field, `does not match task "${task.name}": ${error.message}`), retryable: false };
      } else {
        const ctx: JobContext = {
          job: {
            id: job.id,
            task: job.task,
            queue: job.queue,
            key: job.key,
            priority: row.priority,
            attempt: job.attempt,
            maxAttempts: job.maxAttempts,
            runAt: row.run_at,
            slot: row.slot_at,
            late,
          },
          signal: entry.controller.signal,
          logger,
        };
        try {
          await task.run(parsed.data, ctx);
        } catch (thrown) {
          failure = { error: toError(thrown), retryable: true };
        }
      }
    }
    if (entry.released) return;
    const next = { next_slot: this.nextSlot(rule, row, failure), ...fingerprint };
    if (!failure) {
      this.report(job, await this.outcomes.success({ id: job.id, ...next }), null, logger);
      return;
    }
    const delay = retryDelayMs(job.attempt, task.backoff ?? this.backoff);
    const state = await this.outcomes.failure({
      id: job.id,
      message: failure.error.message,
      stack: failure.error.stack ?? null,
      retry_delay_ms: delay,
      retryable: failure.retryable,
      ...next,
    });
    this.report(job, state, { error: failure.error, runAt: new Date(Date.now() + delay) }, logger);
  }

  /**
   * The slot of the occurrence after this one, computed now, as the outcome is
   * recorded (the statement only uses it when the job finished for good).
   */
  private nextSlot(rule: Rule | null, row: ClaimedRow, failure: { error: Error } | null): Date | null {
    if (!rule || failure?.error instanceof ValidationError && failure.error.field === "rule") return null;
    return nextOccurrence(rule, row.missed, row.slot_at, new Date());
  }

  private report(job: JobEvent, state: RecordedState, failed: { error: Error; runAt: Date } | null, logger: Logger) {
    switch (state) {
      case "succeeded":
        logger.info({ attempt: job.attempt }, "job succeeded");
        this.emit("job:succeeded", job);
        return;
      case "pending":
        logger.warn({ attempt: job.attempt, err: failed!.error, retryAt: failed!.runAt }, "job failed; will retry");
        this.emit("job:retried", job, failed!);
        return;
      case "failed":
      case "cancelled":
        logger.error({ attempt: job.attempt, err: failed?.error }, `job ${state}`);
        this.emit("job:failed", job, { error: failed?.error ?? new Error(state), state });
        return;
      default:
        logger.warn("outcome not recorded: the job is no longer leased to this worker");
        this.emit("job:lost", job);
    }
  }

  private reportError(error: unknown) {
    const err = toError(error);
    // pg errors carry their client; log only what helps a reader.
    const { message, stack } = err;
    this.logger.error({ err: { message, stack, code: (err as { code?: string }).code } }, "worker error");
    this.emit("worker:error", err);
  }
}

/** Creates a `Worker`; call `start()` to begin. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(typeof value === "string" ? value : JSON.stringify(value));
}
