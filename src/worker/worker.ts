import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import pg from "pg";
import { z } from "zod";
import { createClient, type ScheduleSpec } from "../client.js";
import { missingSafeguards, statementBoundMs, withConnectionDefaults, isConnectionError } from "../connection.js";
import { isPgPool, PreparedStatements, toQueryable, UNPREPARED_WARNING, type Queryable } from "../executor.js";
import { ValidationError } from "../errors.js";
import { createLogger, type Logger } from "../logger.js";
import { LeaseRescuer, type RescueCounts } from "../maintenance/lease-rescuer.js";
import { Pruner } from "../maintenance/pruner.js";
import { ServiceRunner } from "../maintenance/service.js";
import { durationSchema, type Duration } from "../schedule/duration.js";
import { jobReleaseMany } from "../sql/jobs.js";
import { TaskRegistry, zodError, type AnyTask } from "../tasks.js";
import type { BackoffOptions } from "./backoff.js";
import type { WorkerEvents } from "./events.js";
import { JobRunner, toError } from "./job-runner.js";
import { LeaseKeeper } from "./lease-keeper.js";
import { OutcomeBatcher } from "./outcome-batcher.js";
import { Producer } from "./producer.js";
import { Wakeups } from "./wakeups.js";
import { Watchdog } from "./watchdog.js";

export interface WorkerOptions {
  /** The tasks this worker runs. It claims only jobs of these tasks. */
  tasks: readonly AnyTask[];
  /**
   * A pg Pool to use (the worker does not end it). Give it `keepAlive`,
   * `connectionTimeoutMillis` and `query_timeout` (the worker warns at start when it
   * lacks them; see the README's "Unreliable networks"), or:
   */
  pool?: pg.Pool;
  /**
   * a connection string: the worker makes its own small pool, with TCP keepalive and a
   * connect timeout, and ends it on `stop`.
   */
  connectionString?: string;
  /** Queues to serve. Default `["default"]`. */
  queues?: readonly string[];
  /** Handlers running at once. Default 10. */
  concurrency?: number;
  /**
   * Claimed jobs that may wait in the worker's buffer for a slot, beyond
   * `concurrency`: the most it claims ahead. The buffer adapts within this bound to
   * what the slots start within half a second; `0` claims only for free slots.
   * Default 2000.
   */
  prefetch?: number;
  /**
   * The longest a claimed job waits in the buffer for a slot before it goes back to
   * pending (its attempt given back). At most leaseMs / 2. Default min(1,000, leaseMs / 4).
   */
  bufferHoldMs?: number;
  /**
   * How long before a job's `run_at` the worker may claim it. Claimed early, a job waits
   * in the buffer (leased, not started) and starts on its `run_at`, never before: the
   * claim's round trip, and a burst's claim of hundreds of rows, then fall before the
   * due time instead of after it. At most 1,000 and at most `bufferHoldMs`; `0` claims
   * only jobs due now, and so does `prefetch: 0`. Default 50 ms (less if `bufferHoldMs`
   * is less).
   */
  claimLeadMs?: number;
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
   * true. Set false behind PgBouncer in transaction mode older than 1.21, or with
   * `max_prepared_statements = 0` (the default of 1.21 to 1.23). Left on there, the
   * first statement that fails for it (SQLSTATE 26000 or 42P05) turns prepared
   * statements off for good, with one warning, and is sent again unprepared.
   */
  prepare?: boolean;
  /** How long a claimed job is leased; renewed while the handler runs. Default 15,000 ms. */
  leaseMs?: number;
  /** How often leases are renewed (one statement for all running jobs). Default leaseMs / 3. */
  heartbeatIntervalMs?: number;
  /** How often this worker looks for expired leases to take back. Default leaseMs / 3. */
  rescueIntervalMs?: number;
  /**
   * How long finished jobs are kept before pruning; `false` keeps them. Default `"1d"`.
   * `0`: a one-off job's row is deleted in the statement that records its success (the
   * fastest path); failed and cancelled jobs, and periodic occurrences, at the next
   * prune.
   */
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

/** A worker's state as `worker.health()` reports it. */
export interface WorkerHealth {
  /** `start` was called. */
  started: boolean;
  /** `stop` was called. */
  stopping: boolean;
  /** The last statement of the worker reached the database (true until one fails). */
  databaseReachable: boolean;
  /** The worker uses a LISTEN connection (`listen` option; false: poll-only). */
  listen: boolean;
  /** The LISTEN connection is up now (false while it reconnects, and with `listen: false`). */
  listening: boolean;
  /** The queues the worker serves. */
  queues: readonly string[];
  /** When a claim statement last answered (`Date.now()` milliseconds); null before the first. */
  lastClaimAt: number | null;
  /** Handlers running now. */
  running: number;
  /** Claimed jobs waiting in the buffer for a slot. */
  buffered: number;
  /** Handlers that may run at once. */
  concurrency: number;
  /** How often an idle worker claims without a wake-up. */
  pollIntervalMs: number;
  /** The database's clock minus this process's, as last measured (0 before the first measure). */
  dbClockOffsetMs: number;
}

/** How long before its run_at a job may be claimed, by default (`claimLeadMs`). */
const CLAIM_LEAD_MS = 50;

const optionsSchema = z.object({
  queues: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "queue names are 1-64 letters, digits or _ . : -")).min(1).default(["default"]),
  concurrency: z.int().min(1).max(1000).default(10),
  prefetch: z.int().min(0).max(10_000).default(2000),
  bufferHoldMs: z.int().min(10).optional(),
  claimLeadMs: z.int().min(0).max(1000).optional(),
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
  /** How long a claimed job may wait in the buffer: `bufferHoldMs`, or its default. */
  private get holdMs(): number {
    return this.options.bufferHoldMs ?? Math.min(1000, Math.floor(this.options.leaseMs / 4));
  }
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  /** With a connection string: one connection for lease renewals alone, so claims and outcome writes cannot keep them waiting. */
  private readonly leasePool: pg.Pool | null;
  private readonly db: Queryable;
  private readonly logger: Logger;
  /** Bounds every statement of the worker, and tells whether the database answers. */
  private readonly watchdog: Watchdog;
  private readonly outcomes: OutcomeBatcher;
  private readonly runner: JobRunner;
  private readonly wakeups: Wakeups;
  private readonly maintenance: { start(): void; stop(): Promise<void> }[];
  private readonly schedules: readonly ScheduleSpec[] | undefined;
  /** Renews the leases of every job this worker holds, until its outcome is written. */
  private readonly leases: LeaseKeeper;
  /** Claims jobs, buffers them and fills the slots. */
  private readonly producer: Producer;
  private started = false;
  private stopping = false;
  /** Whether "worker started" was logged: at the first claim that answered. */
  private announced = false;

  constructor(options: WorkerOptions) {
    super();
    if (!options.tasks?.length) throw new ValidationError("tasks", "a worker needs at least one task");
    this.registry = new TaskRegistry(options.tasks);
    const { tasks: _t, pool: _p, connectionString: _c, backoff: _b, logger: _l, workerId: _w, schedules: _s, ...rest } = options;
    const parsed = optionsSchema.safeParse(rest);
    if (!parsed.success) throw zodError("", parsed.error);
    this.options = parsed.data;
    const { bufferHoldMs, leaseMs } = this.options;
    if (bufferHoldMs !== undefined && bufferHoldMs > leaseMs / 2) {
      throw new ValidationError("bufferHoldMs", `must be at most half of leaseMs (${leaseMs / 2}), got ${bufferHoldMs}`);
    }
    const { claimLeadMs } = this.options;
    if (claimLeadMs !== undefined && claimLeadMs > this.holdMs) {
      throw new ValidationError("claimLeadMs", `must be at most bufferHoldMs (${this.holdMs}), got ${claimLeadMs}`);
    }
    const boundMs = statementBoundMs(leaseMs);
    if (options.pool) {
      if (!isPgPool(options.pool)) {
        throw new ValidationError("pool", "must be a pg Pool: claims, heartbeats and outcome writes run side by side");
      }
      this.pool = options.pool;
      this.ownsPool = false;
      this.leasePool = null;
    } else if (options.connectionString) {
      // Claims, outcome writes, heartbeats and maintenance share it; LISTEN has its own.
      const config = withConnectionDefaults({ connectionString: options.connectionString }, boundMs);
      this.pool = new pg.Pool({ ...config, max: 4 });
      this.leasePool = new pg.Pool({ ...config, max: 1 });
      this.ownsPool = true;
    } else {
      throw new ValidationError("pool", "give a pg Pool or a connectionString");
    }
    // An idle client that loses its connection emits 'error' on the pool; without a
    // listener Node would exit. The next query gets a fresh connection.
    this.pool.on("error", (error) => this.reportError(error));
    this.leasePool?.on("error", (error) => this.reportError(error));
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.logger = (options.logger ?? createLogger()).child({ worker: this.id });
    this.watchdog = new Watchdog(boundMs, {
      down: (error) => {
        this.logger.warn({ err: error }, "database unreachable; the worker keeps trying and says when it is back");
        this.emit("worker:database", { reachable: false });
      },
      up: (outageMs) => {
        this.logger.warn({ outageMs }, `database reachable again after ${(outageMs / 1000).toFixed(1)} s`);
        this.emit("worker:database", { reachable: true, outageMs });
      },
    });
    // One switch for the claim and lease-renewal pools: behind a pooler that loses
    // prepared statements both fall back to unprepared ones, and the warning comes once.
    const prepared = new PreparedStatements(this.options.prepare, (err) => this.logger.warn({ err }, UNPREPARED_WARNING));
    this.db = toQueryable(this.watchdog.guard(this.pool) as pg.Pool, { prepared });
    this.schedules = options.schedules;
    this.outcomes = new OutcomeBatcher(this.db, this.id, (error) => this.reportError(error));
    // Nothing to keep: one-off successes are deleted as they are recorded.
    this.outcomes.deleteSucceeded = this.options.retention === 0;
    // Next occurrences and retries it writes set the timer: on time without LISTEN too.
    this.outcomes.onRunAgainAt = (runAt, dbNow) => this.wakeups.dueAt(runAt, dbNow);
    this.runner = new JobRunner(
      this.outcomes,
      options.backoff ?? {},
      (event, ...args) => (this.emit as (event: string, ...args: unknown[]) => boolean)(event, ...args),
      (event) => this.listenerCount(event) > 0,
      this.logger,
    );
    this.wakeups = new Wakeups(
      // The LISTEN connection gets keepalive and a connect timeout whatever the pool has,
      // and a name an operator can find in pg_stat_activity (unless the app set one).
      this.options.listen
        ? { application_name: process.env.PGAPPNAME ? undefined : "punctual-listen", ...withConnectionDefaults(this.pool.options, boundMs) }
        : undefined,
      this.logger,
      (reason) => this.producer.onWake(reason),
      (error) => this.reportError(error),
      (reconnected) => this.emit("worker:listening", { reconnected }),
      (jobId, workerId) => workerId === this.id && this.onCancelRequested(jobId),
      this.options.queues,
      boundMs,
    );
    const heartbeatMs = this.options.heartbeatIntervalMs ?? Math.max(10, Math.floor(leaseMs / 3));
    const leaseDb = this.leasePool
      ? toQueryable(this.watchdog.guard(this.leasePool) as pg.Pool, { prepared })
      : this.db;
    this.leases = new LeaseKeeper(leaseDb, this.id, leaseMs, heartbeatMs, {
      isRunning: (entry) => this.producer.holds(entry),
      handlerRunning: (entry) => this.producer.running.get(entry.job.id) === entry,
      lost: (entry) => {
        if (this.producer.dropBuffered(entry)) {
          this.logger.warn({ job: entry.job.id }, "lease lost while the job waited in the buffer; it does not start here");
          this.emit("job:lost", entry.job);
          return;
        }
        entry.released = true;
        entry.abort.abort(new Error("lease lost: another worker took this job over"));
        this.logger.warn({ job: entry.job.id }, "lease lost; handler aborted");
        this.emit("job:lost", entry.job);
      },
      cancelRequested: (entry) => this.onCancelRequested(entry.job.id),
      error: (error) => this.reportError(error),
    });
    this.producer = new Producer(
      this.db,
      {
        workerId: this.id,
        queues: this.options.queues,
        tasks: this.registry.names(),
        concurrency: this.options.concurrency,
        prefetch: this.options.prefetch,
        leaseMs,
        pollIntervalMs: this.options.pollIntervalMs,
        holdMs: this.holdMs,
        // Claimed early, a job waits in the buffer: none without one.
        leadMs: this.options.prefetch > 0 ? (this.options.claimLeadMs ?? Math.min(CLAIM_LEAD_MS, this.holdMs)) : 0,
      },
      this.outcomes,
      this.leases,
      this.wakeups,
      this.logger,
      {
        launch: (row, entry, handlerDone) =>
          // The claim only returns tasks this worker knows.
          this.runner.run(this.registry.get(row.task)!, row, entry.job, entry, handlerDone),
        poll: (info) => {
          if (!this.announced) {
            this.announced = true;
            this.logger.info(
              {
                queues: this.options.queues,
                tasks: this.registry.names(),
                concurrency: this.options.concurrency,
                prefetch: this.options.prefetch,
              },
              "worker started",
            );
          }
          this.emit("worker:poll", info);
        },
        lostBuffered: (entry) => {
          this.logger.warn({ job: entry.job.id }, "a buffered job was no longer leased to this worker when handed back");
          this.emit("job:lost", entry.job);
        },
        error: (error) => this.reportError(error),
      },
    );
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
    if (this.started) return;
    this.started = true;
    if (this.schedules) {
      const client = createClient({ executor: this.pool, tasks: this.registry.all() });
      const counts = await client.reconcileSchedules(this.schedules);
      this.logger.info(counts, "declared schedules reconciled");
    }
    if (!this.ownsPool) {
      const missing = missingSafeguards(this.pool.options);
      if (missing.length > 0) {
        this.logger.warn(
          { missing, statementBoundMs: this.watchdog.boundMs },
          "the pool given to the worker lacks " +
            missing.join(", ") +
            ": the worker's own statements are still bounded, but other queries on this pool can wait minutes on a " +
            "connection lost without a word; see the README's recommended pool",
        );
      }
    }
    // "worker started" once its first claim has answered (see the producer's poll hook):
    // a worker that cannot reach its database says that instead.
    this.logger.debug("worker starting");
    this.wakeups.start();
    for (const service of this.maintenance) service.start();
    this.leases.start();
    this.producer.start();
  }

  /**
   * Stops claiming and hands the buffer back to pending at once (no attempt counted),
   * waits up to `timeoutMs` (default 10 s) for running handlers (their leases are still
   * renewed), then aborts the rest through their `AbortSignal` and hands their jobs
   * back to pending at once, so another worker can take them without waiting for the
   * lease to expire. Resolves when every outcome is written.
   */
  async stop({ timeoutMs = 10_000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.producer.stop();
    await Promise.all([this.wakeups.stop(), ...this.maintenance.map((s) => s.stop())]);
    const running = this.producer.running;
    if (running.size > 0) {
      this.logger.info({ running: running.size, timeoutMs }, "waiting for running jobs");
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([Promise.all([...running.values()].map((r) => r.done)), timedOut]);
      clearTimeout(timer);
    }
    const unfinished = [...running.values()].filter((r) => !r.released);
    if (unfinished.length > 0) {
      for (const r of unfinished) {
        r.released = true;
        r.abort.abort(new Error("worker stopping: drain timeout passed"));
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
    if (this.ownsPool) await Promise.all([this.pool.end(), this.leasePool?.end()]);
    this.logger.info("worker stopped");
    this.emit("worker:stopped");
  }

  /**
   * A cancel of a job this worker runs (NOTIFY from `punctual.jobs`' cancel trigger):
   * its handler's signal fires now rather than at the next heartbeat.
   */
  private onCancelRequested(jobId: number) {
    if (this.producer.cancelBuffered(jobId)) return;
    const entry = this.producer.running.get(jobId);
    if (entry && !entry.released && !entry.abort.aborted) {
      entry.abort.abort(new Error("cancelled"));
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

  /**
   * Whether the worker is started, not stopping, and its last statement reached the
   * database: what a readiness probe reports.
   */
  get ready(): boolean {
    return this.started && !this.stopping && this.watchdog.reachable;
  }

  /**
   * What probes and metrics read, now: no I/O, cheap enough for every scrape. See
   * `createMetrics` for the readiness rules built on it.
   */
  health(): WorkerHealth {
    return {
      started: this.started,
      stopping: this.stopping,
      databaseReachable: this.watchdog.reachable,
      listen: this.options.listen,
      listening: this.wakeups.listening,
      queues: this.options.queues,
      lastClaimAt: this.producer.lastClaimAt,
      running: this.producer.running.size,
      buffered: this.producer.buffered,
      concurrency: this.options.concurrency,
      pollIntervalMs: this.options.pollIntervalMs,
      dbClockOffsetMs: this.wakeups.dbClockOffsetMs,
    };
  }

  /**
   * The pg Pool the worker's statements run on: the one it was given, or its own (which
   * `stop` ends). For read-only operator queries, such as the metrics' queue gauges,
   * that should not open connections of their own.
   */
  get connectionPool(): pg.Pool {
    return this.pool;
  }

  private reportError(error: unknown) {
    const err = toError(error);
    if (!this.watchdog.reachable && isConnectionError(err)) {
      // The outage was reported once when it began; its end will be too.
      this.logger.debug({ err }, "database still unreachable");
      this.emit("worker:error", err);
      return;
    }
    // The Error itself, so pino's serializer logs its type, message, code and stack.
    this.logger.error({ err }, "worker error");
    this.emit("worker:error", err);
  }
}

/** Creates a `Worker`; call `start()` to begin. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
