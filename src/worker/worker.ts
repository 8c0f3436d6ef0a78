import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import pg from "pg";
import { z } from "zod";
import { createClient, type ScheduleSpec } from "../client.js";
import { isPgPool, toQueryable, type Queryable } from "../executor.js";
import { ValidationError } from "../errors.js";
import { createLogger, type Logger } from "../logger.js";
import { LeaseRescuer, type RescueCounts } from "../maintenance/lease-rescuer.js";
import { Pruner } from "../maintenance/pruner.js";
import { ServiceRunner } from "../maintenance/service.js";
import { durationSchema, type Duration } from "../schedule/duration.js";
import { jobClaim, jobCompleteAndClaim, jobNextRunAt, jobReleaseMany, type ClaimedRow } from "../sql/jobs.js";
import { TaskRegistry, zodError, type AnyTask } from "../tasks.js";
import type { BackoffOptions } from "./backoff.js";
import type { WorkerEvents } from "./events.js";
import { JobRunner, toError, type Running } from "./job-runner.js";
import { LeaseKeeper } from "./lease-keeper.js";
import { OutcomeBatcher } from "./outcome-batcher.js";
import { Wakeups, type WakeReason } from "./wakeups.js";

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
  /**
   * How often an idle worker claims even without a wake-up. NOTIFY and timers start
   * jobs on time; this is the fallback. Default 2,000 ms.
   */
  pollIntervalMs?: number;
  /**
   * LISTEN for new jobs on a connection of its own. Default true. Set false behind
   * PgBouncer in transaction mode: the worker then relies on timers and polling.
   */
  listen?: boolean;
  /**
   * Prepare the worker's hot statements (claim, complete, lease renewal) once per
   * connection, so PostgreSQL does not parse and plan them for every batch. Default
   * true. Set false behind PgBouncer older than 1.21 in transaction mode (1.21 and
   * later handle prepared statements with `max_prepared_statements` set).
   */
  prepare?: boolean;
  /** How long a claimed job is leased; renewed while the handler runs. Default 15,000 ms. */
  leaseMs?: number;
  /** How often leases are renewed (one statement for all running jobs). Default leaseMs / 3. */
  heartbeatIntervalMs?: number;
  /** How often this worker looks for expired leases to take back. Default leaseMs / 3. */
  rescueIntervalMs?: number;
  /** How long finished jobs are kept before pruning; `false` keeps them. Default `"1d"`. */
  retention?: Duration | false;
  /** How often this worker prunes finished jobs. Default 60,000 ms. */
  pruneIntervalMs?: number;
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

export type { JobEvent, WorkerEvents } from "./events.js";

const optionsSchema = z.object({
  queues: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "queue names are 1-64 letters, digits or _ . : -")).min(1).default(["default"]),
  concurrency: z.int().min(1).max(1000).default(10),
  pollIntervalMs: z.int().min(10).max(3_600_000).default(2000),
  listen: z.boolean().default(true),
  prepare: z.boolean().default(true),
  leaseMs: z.int().min(100).max(86_400_000).default(15_000),
  heartbeatIntervalMs: z.int().min(10).optional(),
  rescueIntervalMs: z.int().min(10).optional(),
  retention: z
    .union([z.literal(false), durationSchema.pipe(z.number().min(0))], {
      error: 'must be false (keep finished jobs) or a duration such as "7d" or 604800000',
    })
    .default(86_400_000),
  pruneIntervalMs: z.int().min(10).default(60_000),
});

/** After an idle claim found a due job it could not take (another worker holds it). */
const BUSY_RETRY_MS = 25;

/**
 * Claims due jobs and runs their handlers, renews their leases, takes back jobs of
 * dead workers, and prunes finished ones.
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
  private readonly outcomes: OutcomeBatcher;
  private readonly runner: JobRunner;
  private readonly wakeups: Wakeups;
  private readonly maintenance: { start(): void; stop(): Promise<void> }[];
  private readonly schedules: readonly ScheduleSpec[] | undefined;
  /** Jobs whose handler runs now: what the concurrency counts. */
  private readonly running = new Map<number, Running>();
  /** Renews the leases of every job this worker holds, until its outcome is written. */
  private readonly leases: LeaseKeeper;
  private loop: Promise<void> | null = null;
  private stopping = false;
  /** Wakes the claim loop from its wait; set only while it waits. */
  private wake: ((reason: WakeReason) => void) | null = null;
  private waitingForSlot = false;

  constructor(options: WorkerOptions) {
    super();
    if (!options.tasks?.length) throw new ValidationError("tasks", "a worker needs at least one task");
    this.registry = new TaskRegistry(options.tasks);
    const { tasks: _t, pool: _p, connectionString: _c, backoff: _b, logger: _l, workerId: _w, schedules: _s, ...rest } = options;
    const parsed = optionsSchema.safeParse(rest);
    if (!parsed.success) throw zodError("", parsed.error);
    this.options = parsed.data;
    if (options.pool) {
      if (!isPgPool(options.pool)) {
        throw new ValidationError("pool", "must be a pg Pool: claims, heartbeats and outcome writes run side by side");
      }
      this.pool = options.pool;
      this.ownsPool = false;
    } else if (options.connectionString) {
      // Claims, outcome writes, heartbeats and maintenance share it; LISTEN has its own.
      this.pool = new pg.Pool({ connectionString: options.connectionString, max: 5 });
      this.ownsPool = true;
    } else {
      throw new ValidationError("pool", "give a pg Pool or a connectionString");
    }
    // An idle client that loses its connection emits 'error' on the pool; without a
    // listener Node would exit. The next query gets a fresh connection.
    this.pool.on("error", (error) => this.reportError(error));
    this.db = toQueryable(this.pool, { prepared: this.options.prepare });
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.logger = (options.logger ?? createLogger()).child({ worker: this.id });
    this.schedules = options.schedules;
    this.outcomes = new OutcomeBatcher(this.db, this.id, (error) => this.reportError(error));
    this.runner = new JobRunner(this.outcomes, options.backoff ?? {}, (event, ...args) =>
      (this.emit as (event: string, ...args: unknown[]) => boolean)(event, ...args),
    );
    this.wakeups = new Wakeups(
      this.options.listen ? this.pool.options : undefined,
      this.logger,
      (reason) => this.onWake(reason),
      (error) => this.reportError(error),
      (reconnected) => this.emit("worker:listening", { reconnected }),
      (jobId, workerId) => workerId === this.id && this.onCancelRequested(jobId),
      this.options.queues,
    );
    const { leaseMs } = this.options;
    const heartbeatMs = this.options.heartbeatIntervalMs ?? Math.max(10, Math.floor(leaseMs / 3));
    this.leases = new LeaseKeeper(this.db, this.id, leaseMs, heartbeatMs, {
      isRunning: (entry) => this.running.get(entry.job.id) === entry,
      lost: (entry) => {
        entry.released = true;
        entry.controller.abort(new Error("lease lost: another worker took this job over"));
        this.logger.warn({ job: entry.job.id }, "lease lost; handler aborted");
        this.emit("job:lost", entry.job);
      },
      cancelRequested: (entry) => this.onCancelRequested(entry.job.id),
      error: (error) => this.reportError(error),
    });
    this.maintenance = [
      new ServiceRunner(
        new LeaseRescuer(this.db),
        this.options.rescueIntervalMs ?? Math.max(10, Math.floor(leaseMs / 3)),
        (counts) => this.onRescued(counts),
        (error) => this.reportError(error),
      ),
    ];
    if (this.options.retention !== false) {
      this.maintenance.push(
        new ServiceRunner(
          new Pruner(this.db, this.options.retention),
          this.options.pruneIntervalMs,
          (counts) => counts.deleted > 0 && this.emit("worker:pruned", counts),
          (error) => this.reportError(error),
        ),
      );
    }
  }

  /** Starts claiming (after reconciling declared schedules). The worker runs until `stop`. */
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
    this.wakeups.start();
    for (const service of this.maintenance) service.start();
    this.leases.start();
    this.loop = this.claimLoop();
  }

  /**
   * Stops claiming, waits up to `timeoutMs` (default 10 s) for running handlers (their
   * leases are still renewed), then aborts the rest through their `AbortSignal` and
   * hands their jobs back to pending at once, so another worker can take them without
   * waiting for the lease to expire. Resolves when every outcome is written.
   */
  async stop({ timeoutMs = 10_000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.wake?.("poll");
    await this.loop;
    await Promise.all([this.wakeups.stop(), ...this.maintenance.map((s) => s.stop())]);
    if (this.running.size > 0) {
      this.logger.info({ running: this.running.size, timeoutMs }, "waiting for running jobs");
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([Promise.all([...this.running.values()].map((r) => r.done)), timedOut]);
      clearTimeout(timer);
    }
    const unfinished = [...this.running.values()].filter((r) => !r.released);
    if (unfinished.length > 0) {
      for (const r of unfinished) {
        r.released = true;
        r.controller.abort(new Error("worker stopping: drain timeout passed"));
      }
      const ids = unfinished.map((r) => r.job.id);
      try {
        await jobReleaseMany(this.db, this.id, unfinished.map((r) => ({ id: r.job.id, attempt: r.job.attempt })));
        this.logger.warn({ jobs: ids }, "handed unfinished jobs back to pending");
      } catch (error) {
        this.reportError(error);
      }
    }
    if (!(await this.outcomes.drain(timeoutMs))) {
      const unwritten = this.outcomes.abandon();
      this.logger.error(
        { jobs: unwritten, timeoutMs },
        "gave up writing outcomes; unless a write still lands, these jobs run again once their lease expires",
      );
    }
    // Leases were renewed until every outcome was written (or given up).
    this.leases.stop();
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
    let reason: WakeReason = "start";
    while (!this.stopping) {
      const free = this.options.concurrency - this.running.size;
      let claimed = 0;
      let failed = false;
      if (free > 0) {
        try {
          claimed = await this.claim(free, reason);
        } catch (error) {
          failed = true;
          this.reportError(error);
        }
      }
      if (this.stopping) break;
      if (free === 0 || claimed === free) {
        // Every slot was taken, and more may be due: claim again once one is free
        // (handlers that returned already have freed theirs).
        reason = this.running.size < this.options.concurrency ? "slot" : await this.wait(null);
        continue;
      }
      // Fewer due jobs than free slots: nothing more is claimable now. Ask when the
      // next one is due, so a timer wakes us on the millisecond.
      if (!failed) await this.lookAhead(claimed === 0);
      reason = await this.wait(this.options.pollIntervalMs);
    }
  }

  private async claim(limit: number, reason: WakeReason): Promise<number> {
    const params = {
      workerId: this.id,
      queues: this.options.queues,
      tasks: this.registry.names(),
      limit,
      leaseMs: this.options.leaseMs,
    };
    // Successes waiting for their batch ride along with the claim: one round trip.
    const taken = this.outcomes.takeSuccesses();
    let rows: ClaimedRow[];
    if (taken) {
      try {
        const result = await jobCompleteAndClaim(this.db, params, taken.successes);
        taken.settle(result.completed);
        rows = result.claimed;
      } catch (error) {
        taken.giveBack();
        throw error;
      }
    } else {
      rows = await jobClaim(this.db, params);
    }
    for (const row of rows) this.startJob(row);
    this.emit("worker:poll", { claimed: rows.length, free: limit, reason });
    return rows.length;
  }

  private async lookAhead(claimedNone: boolean) {
    try {
      const { nextRunAt, dbNow } = await jobNextRunAt(this.db, this.options.queues, this.registry.names());
      if (!nextRunAt) return;
      // Due already, yet not claimed: another worker is taking it right now. Look again
      // shortly rather than spinning.
      const due = nextRunAt <= dbNow;
      if (due && !claimedNone) this.wakeups.dueAt(dbNow, dbNow);
      else this.wakeups.dueAt(due ? new Date(dbNow.getTime() + BUSY_RETRY_MS) : nextRunAt, dbNow);
    } catch (error) {
      this.reportError(error);
    }
  }

  /** Waits for `ms` (or, with null, until a slot frees); a wake-up or `stop` ends it early. */
  private wait(ms: number | null): Promise<WakeReason> {
    return new Promise((resolve) => {
      // `stop` may have come while the loop was busy, when there was no wait to end.
      if (this.stopping) return resolve("poll");
      const timer = ms === null ? undefined : setTimeout(() => done("poll"), ms);
      const done = (reason: WakeReason) => {
        clearTimeout(timer);
        this.wake = null;
        this.waitingForSlot = false;
        resolve(reason);
      };
      this.waitingForSlot = ms === null;
      this.wake = done;
    });
  }

  /** NOTIFY, a timer or a reconnect: claim now, unless every slot is busy anyway. */
  private onWake(reason: WakeReason) {
    if (!this.waitingForSlot) this.wake?.(reason);
  }

  private startJob(row: ClaimedRow) {
    const job = {
      id: Number(row.id),
      task: row.task,
      queue: row.queue,
      key: row.key,
      attempt: row.attempts,
      maxAttempts: row.max_attempts,
    };
    const entry: Running = { job, controller: new AbortController(), released: false, done: Promise.resolve() };
    this.running.set(job.id, entry);
    this.leases.hold(entry);
    const task = this.registry.get(row.task)!; // the claim only returns tasks we know
    // The slot frees when the handler returns; the outcome is written in a batch after.
    // An earlier attempt of this job may still be running here: its lease expired (the
    // heartbeat could not reach the database), the job was rescued, and this worker
    // claimed it again. That attempt's outcome is fenced out by its attempt number;
    // only its own entry may be removed when it returns.
    const freeSlot = () => {
      if (this.running.get(job.id) !== entry) return;
      this.running.delete(job.id);
      if (this.waitingForSlot) this.wake?.("slot");
    };
    entry.done = this.runner
      .run(task, row, job, entry, this.logger, freeSlot)
      .catch((error) => this.reportError(error))
      .finally(() => {
        freeSlot();
        // The outcome is written (or given up): the lease needs no renewing any more.
        this.leases.drop(entry);
      });
  }

  /**
   * A cancel of a job this worker runs (NOTIFY from `punctual.jobs`' cancel trigger):
   * its handler's signal fires now rather than at the next heartbeat.
   */
  private onCancelRequested(jobId: number) {
    const entry = this.running.get(jobId);
    if (entry && !entry.released && !entry.controller.signal.aborted) {
      entry.controller.abort(new Error("cancelled"));
    }
  }

  /**
   * Events go to the app's listeners, each called on its own: a listener that throws
   * must neither keep the others from hearing the event nor break the worker (the
   * exception would surface in the claim loop, a job's promise or a timer). It is
   * logged, and the worker carries on.
   */
  override emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): boolean {
    const listeners = this.rawListeners(event) as ((...args: WorkerEvents[K]) => unknown)[];
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (error) {
        this.logger.error({ err: toError(error), event }, "a worker event listener threw; the worker carries on");
      }
    }
    return listeners.length > 0;
  }

  private onRescued(counts: RescueCounts) {
    for (const job of counts.jobs) {
      this.logger.warn(job, "took back a job whose lease expired");
      this.emit("job:rescued", job);
    }
  }

  private reportError(error: unknown) {
    const err = toError(error);
    // The Error itself, so pino's serializer logs its type, message, code and stack.
    this.logger.error({ err }, "worker error");
    this.emit("worker:error", err);
  }
}

/** Creates a `Worker`; call `start()` to begin. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
