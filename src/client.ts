import pg from "pg";
import { z } from "zod";
import { ValidationError } from "./errors.js";
import { toQueryable, type Executor } from "./executor.js";
import { toJob, type Job } from "./job.js";
import { durationSchema, type Duration } from "./schedule/duration.js";
import { KEY_MAX_LENGTH, PRIORITY_MAX, PRIORITY_MIN, type JobState } from "./schema.js";
import {
  jobCancelByKey,
  jobEnqueueMany,
  jobGetById,
  jobGetByKey,
  jobGetLiveByKey,
  type JobInsert,
} from "./sql/jobs.js";
import { payloadToJson, TaskRegistry, zodError, type AnyTask, type Task } from "./tasks.js";

/** What happens when a job's key already has a live (pending or running) job. */
export type OnConflict = "replace" | "keep";

/** Options of one job. Task defaults apply where an option is absent. */
export interface JobOptions {
  /** When the job becomes due: a Date or an ISO 8601 string with a zone. Default: now. */
  runAt?: Date | string;
  /** Alternatively, how long from now: milliseconds or `"10s"`, `"5m"`, ... */
  delay?: Duration;
  /** Unique job key: at most one live job per key; `get` and `cancel` address it. */
  key?: string;
  /** -10 (most urgent) to 10; among due jobs, lower runs first. Default 0. */
  priority?: number;
  /** Queue name; workers choose the queues they serve. Default `"default"`. */
  queue?: string;
  /** Attempts before the job ends `failed`. Default 5. */
  maxAttempts?: number;
}

/** Where a call runs: the caller's transaction, or another pool or client. */
export interface ExecutorOption {
  /** A pg Pool/PoolClient/Client or a drizzle db/transaction. Default: the client's. */
  executor?: Executor;
}

export interface EnqueueOptions extends JobOptions, ExecutorOption {
  /** With a key whose job is pending: `"replace"` it (default) or `"keep"` it. */
  onConflict?: OnConflict;
}

/** One job for `enqueueMany`. */
export interface JobSpec extends JobOptions {
  task: AnyTask | string;
  payload: unknown;
}

/** What `enqueue` did. */
export interface EnqueueResult {
  /** The id of the live job for this call: the new one, the replaced one or the kept one. */
  id: number;
  key: string | null;
  state: JobState;
  runAt: Date;
  /** `inserted`, `replaced` (a pending job with the key took the new values) or `kept`. */
  outcome: "inserted" | "replaced" | "kept";
}

export interface ClientOptions {
  /** The default executor, usually the app's pg Pool. */
  executor?: Executor;
  /** Or a connection string: the client makes (and `close` ends) its own pool. */
  connectionString?: string;
  /** Tasks that may be enqueued by name. Task objects can always be passed directly. */
  tasks?: readonly AnyTask[];
}

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

const RUN_AT_ERROR = "must be a valid Date or an ISO 8601 date-time with a zone";

const jobOptionsSchema = z
  .object({
    runAt: z
      .union([z.date(), z.iso.datetime({ offset: true, error: RUN_AT_ERROR })], { error: RUN_AT_ERROR })
      .optional(),
    delay: durationSchema.pipe(z.number().min(0, "must not be negative")).optional(),
    key: z.string().min(1, "must not be empty").max(KEY_MAX_LENGTH, `must be at most ${KEY_MAX_LENGTH} characters`).optional(),
    priority: z.int().min(PRIORITY_MIN).max(PRIORITY_MAX).optional(),
    queue: z.string().regex(NAME, "must be 1-64 letters, digits or _ . : -").optional(),
    maxAttempts: z.int().min(1).max(1000).optional(),
  })
  .refine((o) => o.runAt === undefined || o.delay === undefined, {
    message: "give runAt or delay, not both",
    path: ["delay"],
  });

const onConflictSchema = z.enum(["replace", "keep"]).default("replace");

/**
 * Enqueues, reads and cancels jobs. Every method takes an optional `executor`, so the
 * write can join the caller's transaction.
 *
 * @example
 * const punctual = createClient({ executor: pool, tasks: [sendEmail] });
 * await punctual.enqueue(sendEmail, { to: "a@example.com" }, { delay: "10m", key: "welcome:42" });
 */
export class Client {
  private readonly registry: TaskRegistry;
  private readonly executor: Executor | undefined;
  private readonly ownPool: pg.Pool | undefined;

  constructor(options: ClientOptions = {}) {
    this.registry = new TaskRegistry(options.tasks);
    if (options.connectionString) {
      this.ownPool = new pg.Pool({ connectionString: options.connectionString });
      this.executor = this.ownPool;
    } else {
      this.executor = options.executor;
    }
  }

  /**
   * Enqueues one job. The payload is checked against the task's schema and must be
   * JSON; on bad input a `ValidationError` names the field and nothing is written.
   *
   * @example
   * await punctual.enqueue(sendEmail, { to: "a@example.com" }, { runAt: new Date("2030-01-01T08:00:00Z") });
   * await punctual.enqueue("send-email", { to: "a@example.com" }, { executor: tx }); // in the caller's transaction
   */
  async enqueue<S extends z.ZodType>(
    task: Task<S> | string,
    payload: z.input<S>,
    options: EnqueueOptions = {},
  ): Promise<EnqueueResult> {
    const { executor, onConflict, ...jobOptions } = options;
    const [result] = await this.enqueueMany([{ task, payload, ...jobOptions }], { executor, onConflict });
    return result!;
  }

  /**
   * Enqueues many jobs in one statement; results come back in input order. All or
   * nothing: one bad job refuses the whole batch (its field is named `jobs.N....`).
   * Two jobs in one batch may not share a key.
   *
   * @example
   * await punctual.enqueueMany(users.map((u) => ({ task: sendEmail, payload: { to: u.email } })));
   */
  async enqueueMany(
    jobs: readonly JobSpec[],
    options: ExecutorOption & { onConflict?: OnConflict } = {},
  ): Promise<EnqueueResult[]> {
    const conflict = onConflictSchema.safeParse(options.onConflict);
    if (!conflict.success) throw zodError("onConflict", conflict.error);
    if (!Array.isArray(jobs)) throw new ValidationError("jobs", "must be an array");
    if (jobs.length === 0) return [];
    const single = jobs.length === 1;
    const inserts: JobInsert[] = [];
    const payloads: string[] = [];
    const keys = new Map<string, number>();
    jobs.forEach((spec, i) => {
      const at = (field: string) => (single ? field : `jobs.${i}.${field}`);
      const { task: taskRef, payload, ...rest } = spec;
      const task = this.registry.resolve(taskRef, at("task"));
      const parsed = jobOptionsSchema.safeParse(rest);
      if (!parsed.success) throw zodError(single ? "" : `jobs.${i}`, parsed.error);
      const opts = parsed.data;
      if (opts.key !== undefined) {
        if (keys.has(opts.key)) throw new ValidationError(at("key"), `"${opts.key}" appears twice in one batch (also jobs.${keys.get(opts.key)})`);
        keys.set(opts.key, i);
      }
      payloads.push(payloadToJson(task, payload, at("payload")));
      inserts.push({
        task: task.name,
        payload: undefined,
        queue: opts.queue ?? task.queue ?? "default",
        key: opts.key ?? null,
        priority: opts.priority ?? task.priority ?? 0,
        run_at: resolveRunAt(opts.runAt, opts.delay),
        max_attempts: opts.maxAttempts ?? task.maxAttempts ?? 5,
      });
    });
    const db = this.queryable(options.executor);
    const rows = await jobEnqueueMany(db, inserts, payloads, conflict.data);
    return Promise.all(
      rows.map(async (row) => {
        if (row.id !== null) {
          return { id: Number(row.id), key: row.key, state: row.state!, runAt: row.run_at!, outcome: row.outcome };
        }
        // Kept, but the live job was committed after the statement's snapshot: read it again.
        const live = await jobGetLiveByKey(db, row.key!);
        if (!live) throw new Error(`punctual: the live job with key "${row.key}" vanished during enqueue; retry`);
        const job = toJob(live);
        return { id: job.id, key: job.key, state: job.state, runAt: job.runAt, outcome: "kept" as const };
      }),
    );
  }

  /**
   * Reads a job: by key (the live job, else the most recent finished one) or by id.
   *
   * @example
   * const job = await punctual.get("welcome:42"); // job?.state, job?.lastError, ...
   */
  async get(keyOrId: string | number, options: ExecutorOption = {}): Promise<Job | null> {
    const db = this.queryable(options.executor);
    const row =
      typeof keyOrId === "number" ? await jobGetById(db, keyOrId) : await jobGetByKey(db, keyOrId);
    return row ? toJob(row) : null;
  }

  /**
   * Cancels the live job with a key. A pending job is `cancelled` at once; a running
   * job is marked: it may finish, but is not retried and nothing follows it. Returns
   * the job's id and state, or null when no live job has the key.
   *
   * @example
   * await punctual.cancel("welcome:42");
   */
  async cancel(key: string, options: ExecutorOption = {}): Promise<{ id: number; state: JobState } | null> {
    if (typeof key !== "string" || key.length === 0) throw new ValidationError("key", "must be a non-empty string");
    const [row] = await jobCancelByKey(this.queryable(options.executor), key);
    return row ? { id: Number(row.id), state: row.state } : null;
  }

  /** Ends the pool the client made from `connectionString`; a pool it was given stays open. */
  async close(): Promise<void> {
    await this.ownPool?.end();
  }

  private queryable(executor: Executor | undefined) {
    const chosen = executor ?? this.executor;
    if (!chosen) throw new ValidationError("executor", "no executor: pass one to createClient or to this call");
    return toQueryable(chosen);
  }
}

/** Creates a `Client`. */
export function createClient(options: ClientOptions = {}): Client {
  return new Client(options);
}

function resolveRunAt(runAt: Date | string | undefined, delayMs: number | undefined): Date | null {
  if (runAt !== undefined) return new Date(runAt);
  if (delayMs !== undefined) return new Date(Date.now() + delayMs);
  return null;
}
