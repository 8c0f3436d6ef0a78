/**
 * The drizzle definition of Punctual's tables. drizzle-kit turns it into the SQL in
 * `drizzle/`; apps may import it to query jobs with drizzle's query builder.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSchema,
  smallint,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

/** Everything Punctual owns lives in this schema, apart from the app's tables. */
export const punctualSchema = pgSchema("punctual");

/** The states of a job; see the life cycle in the README. */
export const jobState = punctualSchema.enum("job_state", [
  "pending",
  "running",
  "succeeded",
  "failed",
  "cancelled",
]);

/** A job state, as stored in `punctual.jobs.state`. */
export type JobState = (typeof jobState.enumValues)[number];

/** Priorities run from -10 (most urgent) to 10; the claim query relies on the bound. */
export const PRIORITY_MIN = -10;
export const PRIORITY_MAX = 10;
/** Longest job key, in characters. */
export const KEY_MAX_LENGTH = 255;

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * One row per job occurrence. A periodic schedule is one live row that carries its
 * rule; finishing it inserts the next occurrence.
 */
export const jobs = punctualSchema.table(
  "jobs",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    queue: text("queue").notNull().default("default"),
    task: text("task").notNull(),
    payload: jsonb("payload").notNull().default({}),
    /** At most one live (pending or running) job per key. */
    key: text("key"),
    state: jobState("state").notNull().default("pending"),
    /** Lower runs first, among jobs that are due. */
    priority: smallint("priority").notNull().default(0),
    runAt: timestamptz("run_at").notNull().defaultNow(),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(5),
    lastError: text("last_error"),
    lastErrorStack: text("last_error_stack"),
    /** Lease: the worker that runs the job, and until when it holds it. */
    lockedBy: text("locked_by"),
    lockedUntil: timestamptz("locked_until"),
    /** Set by `cancel` on a running job: it may finish, but nothing follows it. */
    cancelRequestedAt: timestamptz("cancel_requested_at"),
    startedAt: timestamptz("started_at"),
    finishedAt: timestamptz("finished_at"),
    createdAt: timestamptz("created_at").notNull().defaultNow(),
    updatedAt: timestamptz("updated_at").notNull().defaultNow(),
    // Periodic rule: a cron expression in a time zone, or a fixed interval.
    cron: text("cron"),
    tz: text("tz"),
    everyMs: bigint("every_ms", { mode: "number" }),
    /** Interval anchoring: false = fixed rate (slot + every), true = finish + every. */
    fixedDelay: boolean("fixed_delay").notNull().default(false),
    /** What to do with slots missed while nothing ran: 'once' | 'skip' | 'all'. */
    missed: text("missed").notNull().default("once"),
    /** The slot this occurrence stands for (run_at moves on retry; this does not). */
    slotAt: timestamptz("slot_at"),
    /** True when the row comes from a declared schedule list (reconciled at start). */
    declared: boolean("declared").notNull().default(false),
    /**
     * The trace context of the code that enqueued the job (W3C `traceparent` and
     * `tracestate`), kept when OpenTelemetry was active there: the job's run span links
     * to it. Null when there was none.
     */
    traceContext: jsonb("trace_context"),
    /**
     * What the last attempt left for operators: a handler's return value, or a built-in
     * task's record (the HTTP task's status, duration and body excerpt). Bounded in size.
     */
    result: jsonb("result"),
  },
  (t) => [
    // The claim path: only pending rows are indexed, so finished and running rows cost
    // nothing; the claim probes one priority at a time (see sql/jobs.ts), so future
    // rows behind the due ones are never scanned.
    index("jobs_claim_idx")
      .on(t.priority, t.runAt, t.id)
      .where(sql`${t.state} = 'pending'`),
    // At most one live job per key. Unkeyed rows (most) stay out of it, so enqueue and
    // claim write one index entry fewer per job (drizzle/0011). ON CONFLICT must name
    // the whole predicate: `on conflict (key) where key is not null and state in (...)`.
    uniqueIndex("jobs_live_key_idx")
      .on(t.key)
      .where(sql`${t.key} is not null and ${t.state} in ('pending', 'running')`),
    // get(key) also finds finished jobs; only keyed rows pay for this index.
    index("jobs_key_idx")
      .on(t.key, t.id)
      .where(sql`${t.key} is not null`),
    index("jobs_lease_idx")
      .on(t.lockedUntil)
      .where(sql`${t.state} = 'running'`),
    index("jobs_finished_idx")
      .on(t.finishedAt)
      .where(sql`${t.state} in ('succeeded', 'failed', 'cancelled')`),
    // Operator queries (CLI, dashboard; drizzle/0008): failed and cancelled rows are few
    // among finished ones; only they enter these, so the hot path does not pay.
    index("jobs_failed_cancelled_idx")
      .on(t.state, t.id)
      .where(sql`${t.state} in ('failed', 'cancelled')`),
    index("jobs_failed_at_idx")
      .on(t.finishedAt)
      .where(sql`${t.state} = 'failed'`),
    check("jobs_priority_range", sql`${t.priority} between ${sql.raw(String(PRIORITY_MIN))} and ${sql.raw(String(PRIORITY_MAX))}`),
    check("jobs_attempts_valid", sql`${t.attempts} >= 0 and ${t.maxAttempts} >= 1`),
    check("jobs_key_length", sql`char_length(${t.key}) between 1 and ${sql.raw(String(KEY_MAX_LENGTH))}`),
    check("jobs_task_not_empty", sql`char_length(${t.task}) between 1 and 128`),
    check("jobs_queue_not_empty", sql`char_length(${t.queue}) between 1 and 64`),
    check("jobs_one_rule", sql`${t.cron} is null or ${t.everyMs} is null`),
    check("jobs_every_positive", sql`${t.everyMs} > 0`),
    check("jobs_missed_policy", sql`${t.missed} in ('once', 'skip', 'all')`),
  ],
);

/** A row of `punctual.jobs`, as drizzle reads it. */
export type JobRow = typeof jobs.$inferSelect;
