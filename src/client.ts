import pg from "pg";
import { z } from "zod";
import { CLIENT_QUERY_TIMEOUT_MS, withConnectionDefaults } from "./connection.js";
import { ValidationError } from "./errors.js";
import { isPgPool, PreparedStatements, toQueryable, UNPREPARED_WARNING, withTransaction, type Executor, type Queryable } from "./executor.js";
import { nextRunAt } from "./schedule/next.js";
import { parseRule, ruleToColumns, toRule, type Rule, type ScheduleRule } from "./schedule/rule.js";
import { jobRemoveUndeclared, jobScheduleMany, scheduleLockReconcile, type ScheduleInsert, type ScheduleRow } from "./sql/schedules.js";
import { EnqueueCoalescer, writeOne } from "./enqueue-coalescer.js";
import { toJob, type Job } from "./job.js";
import { storableString } from "./json.js";
import { loadedTracing, loadTracing } from "./otel.js";
import { durationSchema, type Duration } from "./schedule/duration.js";
import { KEY_MAX_LENGTH, PRIORITY_MAX, PRIORITY_MIN, type JobState } from "./schema.js";
import {
  jobCancelByKey,
  jobEnqueueMany,
  jobGetById,
  jobGetByKey,
  jobGetLiveByKey,
  type EnqueueRow,
  type JobInsert,
} from "./sql/jobs.js";
import { payloadToJson, TaskRegistry, zodError, type AnyTask, type PayloadInput, type PayloadSchema, type Task } from "./tasks.js";

/** What happens when a job's key already has a live (pending or running) job. */
export type OnConflict = "replace" | "keep";

/** Options of one job. Task defaults apply where an option is absent. */
export interface JobOptions {
  /** When the job becomes due: a Date or an ISO 8601 string with a zone, in the years 1 to 9999. Default: now. */
  runAt?: Date | string;
  /** Alternatively, how long from now: milliseconds or `"10s"`, `"5m"`, ... (not past the year 9999). */
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

/** Options of a schedule (`schedule`, `scheduleMany`, declared schedules). */
export interface ScheduleOptions {
  /** Default `"default"`. */
  queue?: string;
  /** -10..10, default 0. */
  priority?: number;
  /** Attempts per occurrence before it ends `failed` (the schedule goes on). Default 5. */
  maxAttempts?: number;
  /** Interval rules only: the first run. Default: one interval from now. */
  startAt?: Date | string;
}

/** One schedule for `scheduleMany` and declared schedules. */
export interface ScheduleSpec extends ScheduleOptions {
  /** Required: a schedule is addressed by its key (`get`, `cancel`). */
  key: string;
  task: AnyTask | string;
  payload: unknown;
  rule: ScheduleRule;
}

/** What `schedule` did. */
export interface ScheduleResult {
  id: number;
  key: string;
  state: JobState;
  runAt: Date;
  /** The slot the live occurrence stands for. */
  slotAt: Date | null;
  /** `inserted`, `updated` (the pending occurrence moved if the rule changed) or `unchanged`. */
  outcome: "inserted" | "updated" | "unchanged";
}

/** What `reconcileSchedules` did, counted by key. */
export interface ReconcileResult {
  inserted: number;
  updated: number;
  unchanged: number;
  /** Declared schedules that are no longer declared, and were ended. */
  removed: number;
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
  /**
   * Prepare `enqueue`'s statement once per connection (a named statement), so
   * PostgreSQL stops parsing and planning it on every call. Default true; `false`
   * behind PgBouncer in transaction mode without prepared-statement support (before
   * 1.21, or `max_prepared_statements = 0`), as for the worker's `prepare`. Left on
   * there, the first failed statement (SQLSTATE 26000 or 42P05) turns them off for
   * good, with one process warning (`PUNCTUAL_UNPREPARED`), and is sent again
   * unprepared. A drizzle executor runs it unnamed either way.
   */
  prepare?: boolean;
}

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

const RUN_AT_ERROR = "must be a valid Date or an ISO 8601 date-time with a zone";

const keySchema = (typeError?: string) =>
  storableString(typeError)
    .min(1, "must not be empty")
    .max(KEY_MAX_LENGTH, `must be at most ${KEY_MAX_LENGTH} characters`);

const jobOptionsShape = z.strictObject({
  runAt: z
    .union([z.date(), z.iso.datetime({ offset: true, error: RUN_AT_ERROR })], { error: RUN_AT_ERROR })
    .optional(),
  delay: durationSchema.pipe(z.number().min(0, "must not be negative")).optional(),
  key: keySchema().optional(),
  priority: z.int().min(PRIORITY_MIN).max(PRIORITY_MAX).optional(),
  queue: z.string().regex(NAME, "must be 1-64 letters, digits or _ . : -").optional(),
  maxAttempts: z.int().min(1).max(1000).optional(),
});

const jobOptionsSchema = jobOptionsShape.refine((o) => o.runAt === undefined || o.delay === undefined, {
  message: "give runAt or delay, not both",
  path: ["delay"],
});

const onConflictSchema = z.enum(["replace", "keep"]).default("replace");

/** A job checked and turned into its row, with its payload's JSON text. */
type PreparedJob = { insert: JobInsert; payload: string };

const JOB_OPTION_NAMES = new Set(Object.keys(jobOptionsShape.shape));

/** True when a job gives no option (none, or only known ones left undefined): nothing to check. */
function noOptions(rest: Record<string, unknown>): boolean {
  for (const name in rest) if (rest[name] !== undefined || !JOB_OPTION_NAMES.has(name)) return false;
  return true;
}

/** The result of an enqueue row the statement saw (its id is known). */
function enqueueResultOf(row: EnqueueRow): EnqueueResult {
  return { id: Number(row.id), key: row.key, state: row.state!, runAt: row.run_at!, outcome: row.outcome };
}

const scheduleOptionsSchema = jobOptionsShape
  .pick({ queue: true, priority: true, maxAttempts: true })
  .extend({
    key: keySchema("a schedule needs a key"),
    startAt: z.union([z.date(), z.iso.datetime({ offset: true, error: RUN_AT_ERROR })], { error: RUN_AT_ERROR }).optional(),
  });

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
  /**
   * Named statements on or off, for every executor this client is given: one that
   * shows they do not survive (a pooler in transaction mode) turns them off for all.
   */
  private readonly prepared: PreparedStatements;
  /** The default executor's `Queryable`, made once. */
  private defaultDb: Queryable | undefined;
  /** Made at the first `enqueue` on a pool: see `coalescer()`. */
  private enqueues: EnqueueCoalescer | undefined;
  /** `enqueue` calls in progress. */
  private readonly calls = new Set<Promise<EnqueueResult>>();

  constructor(options: ClientOptions = {}) {
    this.registry = new TaskRegistry(options.tasks);
    if (options.prepare !== undefined && typeof options.prepare !== "boolean") {
      throw new ValidationError("prepare", "must be true or false");
    }
    // The client has no logger: the fallback is said once, as a process warning.
    this.prepared = new PreparedStatements(options.prepare ?? true, (error) =>
      process.emitWarning(UNPREPARED_WARNING, { type: "PunctualWarning", code: "PUNCTUAL_UNPREPARED", detail: error.message }),
    );
    if (options.connectionString) {
      // Keepalive, a connect timeout and a query timeout: a lost connection fails
      // the call in bounded time instead of hanging it for minutes.
      this.ownPool = new pg.Pool({
        ...withConnectionDefaults({ connectionString: options.connectionString }),
        query_timeout: CLIENT_QUERY_TIMEOUT_MS,
      });
      this.executor = this.ownPool;
    } else {
      this.executor = options.executor;
    }
    // Starts the one import of OpenTelemetry (a no-op without it) before the first enqueue.
    void loadTracing();
  }

  /**
   * Enqueues one job. The payload is checked against the task's schema and must be
   * JSON; on bad input a `ValidationError` names the field and nothing is written.
   *
   * @example
   * await punctual.enqueue(sendEmail, { to: "a@example.com" }, { runAt: new Date("2030-01-01T08:00:00Z") });
   * await punctual.enqueue("send-email", { to: "a@example.com" }, { executor: tx }); // in the caller's transaction
   */
  enqueue<S extends PayloadSchema>(task: Task<S> | string, payload: PayloadInput<S>, options: EnqueueOptions = {}): Promise<EnqueueResult> {
    const call = this.enqueueNow(task, payload, options);
    // `close` waits for the calls already made (the client's own pool ends after them).
    this.calls.add(call);
    void call.catch(() => {}).finally(() => this.calls.delete(call));
    return call;
  }

  private async enqueueNow<S extends PayloadSchema>(
    task: Task<S> | string,
    payload: PayloadInput<S>,
    options: EnqueueOptions,
  ): Promise<EnqueueResult> {
    const { executor, onConflict, ...jobOptions } = options;
    const conflict = onConflictSchema.safeParse(onConflict);
    if (!conflict.success) throw zodError("onConflict", conflict.error);
    // The caller's OpenTelemetry span, if any, for the run span's link (src/otel.ts).
    const traceContext = (loadedTracing() ?? (await loadTracing())).activeTraceContext();
    // Checked exactly as enqueueMany checks a one-job batch (fields named without a prefix).
    const { insert, payload: payloadJson } = await this.prepareJob({ task, payload, ...jobOptions }, (field) => field, "");
    const db = this.queryable(executor);
    // On the client's pool, concurrent calls share statements and commits (see
    // src/enqueue-coalescer.ts); in a transaction, or on one connection, each call is
    // its own statement.
    const coalescer = executor === undefined ? this.coalescer() : undefined;
    const row = coalescer
      ? await coalescer.enqueue(insert, payloadJson, conflict.data, traceContext)
      : await writeOne(db, insert, payloadJson, conflict.data, traceContext);
    return this.enqueueResult(db, row);
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
    const traceContext = (loadedTracing() ?? (await loadTracing())).activeTraceContext();
    const single = jobs.length === 1;
    const inserts: JobInsert[] = [];
    const payloads: string[] = [];
    const keys = new Map<string, number>();
    // One job after the other, so the first bad one (by index) is the one named.
    for (const [i, spec] of jobs.entries()) {
      const at = (field: string) => (single ? field : `jobs.${i}.${field}`);
      const prepared = this.prepareJob(spec, at, single ? "" : `jobs.${i}`, (key) => {
        if (keys.has(key)) throw new ValidationError(at("key"), `"${key}" appears twice in one batch (also jobs.${keys.get(key)})`);
        keys.set(key, i);
      });
      // Awaited only for an async validator: a thousand awaits cost more than the checks.
      const job = prepared instanceof Promise ? await prepared : prepared;
      payloads.push(job.payload);
      inserts.push(job.insert);
    }
    const db = this.queryable(options.executor);
    const rows = await jobEnqueueMany(db, inserts, payloads, conflict.data, traceContext);
    if (rows.every((row) => row.id !== null)) return rows.map(enqueueResultOf);
    return Promise.all(rows.map((row) => this.enqueueResult(db, row)));
  }

  /**
   * Checks one job and turns it into its row: the task, the options (zod; errors under
   * `prefix`), `checkKey` for a batch's duplicate keys, then the payload (its schema,
   * JSON, and the schema again after a JSON round trip; awaited for an async
   * validator) and the due time.
   */
  private prepareJob(
    spec: JobSpec,
    at: (field: string) => string,
    prefix: string,
    checkKey?: (key: string) => void,
  ): PreparedJob | Promise<PreparedJob> {
    const { task: taskRef, payload, ...rest } = spec;
    const task = this.registry.resolve(taskRef, at("task"));
    let opts: z.output<typeof jobOptionsSchema> = {};
    if (!noOptions(rest)) {
      const parsed = jobOptionsSchema.safeParse(rest);
      if (!parsed.success) throw zodError(prefix, parsed.error);
      opts = parsed.data;
    }
    if (opts.key !== undefined) checkKey?.(opts.key);
    const payloadJson = payloadToJson(task, payload, at("payload"));
    if (payloadJson instanceof Promise) return payloadJson.then((json) => this.jobRow(task, opts, json, at));
    return this.jobRow(task, opts, payloadJson, at);
  }

  private jobRow(task: AnyTask, opts: z.output<typeof jobOptionsSchema>, payloadJson: string, at: (field: string) => string): PreparedJob {
    return {
      payload: payloadJson,
      insert: {
        task: task.name,
        payload: undefined,
        queue: opts.queue ?? task.queue ?? "default",
        key: opts.key ?? null,
        priority: opts.priority ?? task.priority ?? 0,
        run_at: resolveRunAt(opts.runAt, opts.delay, at),
        max_attempts: opts.maxAttempts ?? task.maxAttempts ?? 5,
      },
    };
  }

  /** An enqueue row as the caller sees it; a job kept by a row the statement could not see is read again. */
  private async enqueueResult(db: Queryable, row: EnqueueRow): Promise<EnqueueResult> {
    if (row.id !== null) return enqueueResultOf(row);
    // Kept, but the live job was committed after the statement's snapshot: read it again.
    const live = await jobGetLiveByKey(db, row.key!);
    if (!live) throw new Error(`punctual: the live job with key "${row.key}" vanished during enqueue; retry`);
    const job = toJob(live);
    return { id: job.id, key: job.key, state: job.state, runAt: job.runAt, outcome: "kept" };
  }

  /**
   * Creates a periodic schedule, or updates the one with this key: one live row that
   * carries its rule; each occurrence, when it finishes, inserts the next. Scheduling
   * an existing key applies the new payload, options and rule; the pending occurrence
   * moves only if the rule changed. End it with `cancel(key)`.
   *
   * @example
   * await punctual.schedule(`todo-email:${user.id}`, sendTodoEmail, { userId: user.id }, { cron: "0 8 * * *", tz: user.timeZone });
   * await punctual.schedule("expired-plans", checkExpiredPlans, {}, { every: "1h" });
   */
  async schedule<S extends PayloadSchema>(
    key: string,
    task: Task<S> | string,
    payload: PayloadInput<S>,
    rule: ScheduleRule,
    options: ScheduleOptions & ExecutorOption = {},
  ): Promise<ScheduleResult> {
    const { executor, ...rest } = options;
    const [result] = await this.scheduleMany([{ key, task, payload, rule, ...rest }], { executor });
    return result!;
  }

  /**
   * Creates or updates many schedules in one statement (all or nothing); results in
   * input order. Thousands of per-user schedules fit in one call.
   *
   * @example
   * await punctual.scheduleMany(users.map((u) => ({
   *   key: `todo-email:${u.id}`, task: sendTodoEmail, payload: { userId: u.id },
   *   rule: { cron: "0 8 * * *", tz: u.timeZone },
   * })));
   */
  async scheduleMany(specs: readonly ScheduleSpec[], options: ExecutorOption = {}): Promise<ScheduleResult[]> {
    const { inserts, payloads } = await this.prepareSchedules(specs, false);
    if (inserts.length === 0) return [];
    const db = this.queryable(options.executor);
    return this.scheduleResults(db, await jobScheduleMany(db, inserts, payloads));
  }

  /**
   * Makes the table match the app's list of periodic jobs: inserts missing schedules,
   * updates changed ones, and ends declared schedules that are no longer in the list.
   * Schedules created at run time with `schedule` are never removed. Idempotent, and
   * serialised by an advisory lock: any number of processes may reconcile the same
   * list at once and leave exactly one live row per key. Workers given `schedules` call
   * this at start. Runs in its own transaction, so it needs a pool or drizzle database.
   *
   * @example
   * await punctual.reconcileSchedules([
   *   { key: "expired-plans", task: checkExpiredPlans, payload: {}, rule: { every: "1h" } },
   *   { key: "extract-todos", task: extractTodos, payload: {}, rule: { every: "10m" } },
   * ]);
   */
  async reconcileSchedules(declared: readonly ScheduleSpec[], options: ExecutorOption = {}): Promise<ReconcileResult> {
    const { inserts, payloads } = await this.prepareSchedules(declared, true);
    const result: ReconcileResult = { inserted: 0, updated: 0, unchanged: 0, removed: 0 };
    await withTransaction(options.executor ?? this.executor, async (db) => {
      await scheduleLockReconcile(db);
      const rows = inserts.length ? await jobScheduleMany(db, inserts, payloads) : [];
      for (const row of rows) result[row.outcome] += 1;
      result.removed = (await jobRemoveUndeclared(db, inserts.map((s) => s.key))).length;
    });
    return result;
  }

  private async prepareSchedules(specs: readonly ScheduleSpec[], declared: boolean) {
    if (!Array.isArray(specs)) throw new ValidationError("schedules", "must be an array");
    const single = specs.length === 1 && !declared;
    const inserts: ScheduleInsert[] = [];
    const payloads: string[] = [];
    const keys = new Map<string, number>();
    const now = new Date();
    for (const [i, spec] of specs.entries()) {
      const prefix = single ? "" : `schedules.${i}`;
      const at = (field: string) => (prefix ? `${prefix}.${field}` : field);
      const { task: taskRef, payload, rule: ruleInput, ...rest } = spec;
      const parsed = scheduleOptionsSchema.safeParse(rest);
      if (!parsed.success) throw zodError(prefix, parsed.error);
      const opts = parsed.data;
      if (keys.has(opts.key)) throw new ValidationError(at("key"), `"${opts.key}" appears twice (also schedules.${keys.get(opts.key)})`);
      keys.set(opts.key, i);
      const task = this.registry.resolve(taskRef, at("task"));
      const ruleParsed = parseRule(ruleInput, at("rule"));
      const rule = toRule(ruleParsed);
      if (opts.startAt !== undefined && rule.kind !== "every") {
        throw new ValidationError(at("startAt"), "applies to interval rules only; a cron rule's first slot comes from the rule");
      }
      payloads.push(await payloadToJson(task, payload, at("payload")));
      inserts.push({
        key: opts.key,
        task: task.name,
        queue: opts.queue ?? task.queue ?? "default",
        priority: opts.priority ?? task.priority ?? 0,
        max_attempts: opts.maxAttempts ?? task.maxAttempts ?? 5,
        declared,
        slot_at: opts.startAt !== undefined ? new Date(opts.startAt) : firstSlot(rule, now),
        ...ruleToColumns(ruleParsed),
      });
    }
    return { inserts, payloads };
  }

  private scheduleResults(db: Queryable, rows: ScheduleRow[]): Promise<ScheduleResult[]> {
    return Promise.all(
      rows.map(async (row) => {
        let { id, state, run_at: runAt, slot_at: slotAt } = row;
        if (id === null) {
          // Unchanged, but committed after the statement's snapshot: read it again.
          const live = await jobGetLiveByKey(db, row.key);
          if (!live) throw new Error(`punctual: the live job with key "${row.key}" vanished during schedule; retry`);
          ({ id, state, run_at: runAt, slot_at: slotAt } = live as never);
        }
        return { id: Number(id), key: row.key, state: state!, runAt: runAt!, slotAt, outcome: row.outcome };
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
    if (typeof keyOrId === "number") {
      if (!Number.isSafeInteger(keyOrId)) throw new ValidationError("id", "must be an integer job id");
    } else {
      checkKey(keyOrId);
    }
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
    checkKey(key);
    const [row] = await jobCancelByKey(this.queryable(options.executor), key);
    return row ? { id: Number(row.id), state: row.state } : null;
  }

  /**
   * Ends the pool the client made from `connectionString`, once the `enqueue` calls
   * already made are settled; a pool it was given stays open.
   */
  async close(): Promise<void> {
    await Promise.allSettled(this.calls);
    await this.ownPool?.end();
  }

  /**
   * The group commit of single enqueues, when the default executor is a pool (each
   * statement its own transaction); undefined for one connection or a transaction,
   * where grouping would tie the calls' fates together.
   */
  private coalescer(): EnqueueCoalescer | undefined {
    if (this.enqueues === undefined && isPgPool(this.executor)) this.enqueues = new EnqueueCoalescer(this.queryable(undefined));
    return this.enqueues;
  }

  private queryable(executor: Executor | undefined): Queryable {
    if (executor === undefined && this.defaultDb) return this.defaultDb;
    const chosen = executor ?? this.executor;
    if (!chosen) throw new ValidationError("executor", "no executor: pass one to createClient or to this call");
    const db = toQueryable(chosen, { prepared: this.prepared });
    if (executor === undefined) this.defaultDb = db;
    return db;
  }
}

/** A key to look up: a non-empty string PostgreSQL can compare (no NUL, no lone surrogate); no length limit. */
const lookupKeySchema = storableString("must be a non-empty string").min(1, "must be a non-empty string");

function checkKey(key: unknown): asserts key is string {
  const parsed = lookupKeySchema.safeParse(key);
  if (!parsed.success) throw zodError("key", parsed.error);
}

/** Creates a `Client`. */
export function createClient(options: ClientOptions = {}): Client {
  return new Client(options);
}

/** A new schedule's first slot: the rule's next slot, or one interval from now. */
function firstSlot(rule: Rule, now: Date): Date {
  return rule.kind === "every" ? new Date(now.getTime() + rule.everyMs) : nextRunAt(rule, now);
}

/**
 * The instants PostgreSQL reads back from the ISO 8601 text a due time travels as:
 * years 1 to 9999 (UTC). Outside, JavaScript writes a year of 0 or six digits
 * ("+010000-01-01T00:00:00.000Z"), which PostgreSQL refuses, and a Date past
 * ±8.64e15 ms is invalid and would travel as null (due now).
 */
const RUN_AT_MIN_MS = Date.parse("0001-01-01T00:00:00.000Z");
const RUN_AT_MAX_MS = Date.parse("9999-12-31T23:59:59.999Z");

/** The due time of a job, or null for "now, by the database's clock". */
function resolveRunAt(runAt: Date | string | undefined, delayMs: number | undefined, at: (field: string) => string): Date | null {
  if (runAt !== undefined) {
    const date = new Date(runAt);
    const ms = date.getTime();
    if (!(ms >= RUN_AT_MIN_MS && ms <= RUN_AT_MAX_MS)) throw new ValidationError(at("runAt"), "must be between the years 1 and 9999 (UTC)");
    return date;
  }
  if (delayMs !== undefined) {
    const ms = Date.now() + delayMs;
    if (!(ms <= RUN_AT_MAX_MS)) throw new ValidationError(at("delay"), "puts the job after the year 9999");
    return new Date(ms);
  }
  return null;
}
