/**
 * What `npm run bench` needs from each job system. One module per system in
 * bench/systems/, each default-exporting a `SystemModule`. The parent process uses
 * `open` (enqueue, schedule, seed, reset); worker processes (bench/lib/child.ts) use
 * `startWorker`, so each worker is a real OS process, as in production.
 */

/** The payload every bench job carries. */
export interface BenchPayload {
  /** Sequence number. */
  n: number;
  /** When the job was meant to start (ms since epoch): its run_at, or its enqueue time. */
  t?: number;
  /** Schedule index, for periodic jobs. */
  s?: number;
}

/** Where the system keeps its jobs. Each system gets a PostgreSQL database of its own. */
export interface BenchContext {
  /** A fresh PostgreSQL database for this system alone. */
  dbUrl: string;
  /** The machine's Redis (BullMQ on Redis only). */
  redisUrl: string;
}

export interface WorkerSpec {
  /** Handlers running at once in this process. */
  concurrency: number;
  /** "defaults": the system as documented out of the box; "best": its documented batching options. */
  mode: "defaults" | "best";
  /**
   * How long finished jobs should be kept, for systems that keep them (steady state
   * sets it so that pruning shows within the run). Others ignore it.
   */
  keepFinishedMs?: number;
  /** Called as each handler starts (the handler itself does nothing else, unless `effect`). */
  onJob: (payload: BenchPayload) => void;
  /**
   * What the handler writes (systems that support it; see `SystemModule.effects`):
   * "write" inserts a row into `bench_effects` (autocommit), "transactional" inserts it
   * in a transaction that also records the job's completion. Default: nothing.
   */
  effect?: "write" | "transactional";
}

export interface RunningWorker {
  /** Stops gracefully and closes every connection the worker opened. */
  stop(): Promise<void>;
}

export interface SystemHandle {
  /** Removes every job, finished or not, and every schedule. */
  reset(): Promise<void>;
  /** One job per call, due now unless `runAt`. */
  enqueueOne(payload: BenchPayload, runAt?: Date): Promise<void>;
  /** Many jobs in one call of the system's batch API. */
  enqueueBatch(jobs: readonly { payload: BenchPayload; runAt?: Date }[]): Promise<void>;
  /**
   * `count` schedules, each firing every second with payload `{ n: 0, s: index }`, on
   * second boundaries. Omitted when the system cannot fire every second.
   */
  schedulePerSecond?(count: number): Promise<void>;
  /**
   * Fills the store with `future` pending jobs due far in the future (like per-user
   * schedules) and `finished` completed jobs, the fastest way the system allows.
   */
  seedScale?(future: number, finished: number): Promise<void>;
  /** Bytes the system's jobs take now (tables + indexes, or Redis memory). */
  storageBytes(): Promise<number>;
  /** Dead tuples in the system's tables (PostgreSQL systems), else null. */
  deadTuples(): Promise<number | null>;
  close(): Promise<void>;
}

export interface SystemModule {
  /** Short id used on the command line and in child processes, e.g. "graphile-worker". */
  id: string;
  /** Name and version for tables, e.g. "graphile-worker 0.18.0". */
  label: string;
  /** "postgres" systems share the PostgreSQL server; CPU and transactions are measured there. */
  store: "postgres" | "redis";
  /**
   * The tables that hold the system's jobs (schema-qualified), for "postgres" systems:
   * the process workload runs `VACUUM ANALYZE` on them between the enqueue and the
   * workers' start, except in its fresh-backlog case.
   */
  jobTables?: readonly string[];
  /** The handler effects `startWorker` supports (`WorkerSpec.effect`); none when missing. */
  effects?: readonly ("write" | "transactional")[];
  /** When `schedulePerSecond` is missing: why (shown in the table). */
  periodicNote?: string;
  /** Connects, installs the system's schema (idempotent), returns a handle. */
  open(ctx: BenchContext): Promise<SystemHandle>;
  /** Starts a worker in the current process. */
  startWorker(ctx: BenchContext, spec: WorkerSpec): Promise<RunningWorker>;
}
