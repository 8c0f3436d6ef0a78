/**
 * Every runtime statement on `punctual.jobs`, one function each. Values always travel
 * as parameters; the only text spliced in is Punctual's own constants.
 */
import type { Queryable } from "../executor.js";
import { JOB_COLUMNS } from "../job.js";
import { PRIORITY_MAX, PRIORITY_MIN, type JobState } from "../schema.js";

/** One job for `jobEnqueueMany`, in the column names of `punctual.enqueue_many`. */
export interface JobInsert {
  task: string;
  payload: unknown;
  queue?: string;
  key?: string | null;
  priority?: number;
  run_at?: Date | null;
  max_attempts?: number;
}

export interface EnqueueRow {
  id: string | null;
  key: string | null;
  state: JobState | null;
  run_at: Date | null;
  outcome: "inserted" | "replaced" | "kept";
}

/**
 * Inserts jobs through `punctual.enqueue_many` (drizzle/0001_enqueue_functions.sql),
 * which holds the key semantics for SQL and TypeScript callers alike. `payloadsJson`
 * are already-serialised payloads, spliced into the array as raw JSON.
 */
export async function jobEnqueueMany(
  db: Queryable,
  jobs: readonly JobInsert[],
  payloadsJson: readonly string[],
  onConflict: "replace" | "keep",
): Promise<EnqueueRow[]> {
  // Build the JSON array by hand so each payload's text is embedded once, verbatim,
  // instead of being parsed and serialised again.
  const elements = jobs.map((job, i) => {
    const { payload: _payload, ...fields } = job;
    const head = JSON.stringify(fields);
    return `${head.slice(0, -1)}${head.length > 2 ? "," : ""}"payload":${payloadsJson[i]}}`;
  });
  return db.query<EnqueueRow & Record<string, unknown>>(
    "select id, key, state, run_at, outcome from punctual.enqueue_many($1::jsonb, $2) order by ord",
    [`[${elements.join(",")}]`, onConflict],
  );
}

/** The live (pending or running) job with a key, if any. */
export async function jobGetLiveByKey(db: Queryable, key: string) {
  const rows = await db.query(
    `select ${JOB_COLUMNS} from punctual.jobs where key = $1 and state in ('pending', 'running')`,
    [key],
  );
  return rows[0];
}

/** The job with a key: the live one, else the most recent finished one. */
export async function jobGetByKey(db: Queryable, key: string) {
  const rows = await db.query(
    `select ${JOB_COLUMNS} from punctual.jobs where key = $1
     order by state in ('pending', 'running') desc, id desc limit 1`,
    [key],
  );
  return rows[0];
}

export async function jobGetById(db: Queryable, id: number) {
  const rows = await db.query(`select ${JOB_COLUMNS} from punctual.jobs where id = $1`, [id]);
  return rows[0];
}

/**
 * Cancels the live job with a key. A pending job becomes `cancelled` at once; a running
 * one is marked (`cancel_requested_at`): its handler may finish, and nothing follows it.
 */
export async function jobCancelByKey(db: Queryable, key: string) {
  return db.query<{ id: string; state: JobState }>(
    `update punctual.jobs
     set state = case when state = 'pending' then 'cancelled'::punctual.job_state else state end,
         finished_at = case when state = 'pending' then now() else finished_at end,
         cancel_requested_at = now(), updated_at = now()
     where key = $1 and state in ('pending', 'running')
     returning id, state`,
    [key],
  );
}

/** A claimed job, as the worker needs it. */
export interface ClaimedRow {
  id: string;
  task: string;
  queue: string;
  payload: unknown;
  key: string | null;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
}

/**
 * Claims up to `limit` due jobs for `workerId`, most urgent first, and leases them.
 *
 * Shape: the claim index is (priority, run_at, id) over pending rows only. A plain
 * `order by priority, run_at` would walk every future-dated row of the first priority
 * before reaching due rows of the next one, so the query probes each priority in turn
 * (a lateral join over the fixed priority range) with `run_at <= now` bounding each
 * probe: the work is proportional to the jobs claimed, not to the rows waiting for the
 * future, and finished rows are not in the index at all. SKIP LOCKED lets any number
 * of workers claim at once without waiting on each other; the outer LIMIT stops
 * probing as soon as enough rows are locked.
 */
export async function jobClaim(
  db: Queryable,
  params: { workerId: string; queues: readonly string[]; tasks: readonly string[]; limit: number; leaseMs: number },
): Promise<ClaimedRow[]> {
  return db.query<ClaimedRow & Record<string, unknown>>(
    `update punctual.jobs as j
     set state = 'running', attempts = j.attempts + 1, locked_by = $1,
         locked_until = now() + $5 * interval '1 millisecond', started_at = now(), updated_at = now()
     from (
       select due.id
       from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
       cross join lateral (
         select id from punctual.jobs
         where state = 'pending' and priority = p.priority and run_at <= now()
           and queue = any($2::text[]) and task = any($3::text[])
         order by run_at, id
         limit $4
         for update skip locked
       ) as due
       limit $4
     ) as claimed
     where j.id = claimed.id
     returning j.id, j.task, j.queue, j.payload, j.key, j.priority, j.run_at, j.attempts, j.max_attempts`,
    [params.workerId, params.queues, params.tasks, params.limit, params.leaseMs],
  );
}

/**
 * Records successes. Fenced on the lease: only jobs still running under `workerId`
 * change, so a worker whose lease was taken over cannot overwrite the new owner's
 * outcome. Returns the ids that were recorded.
 */
export async function jobCompleteMany(db: Queryable, workerId: string, ids: readonly number[]) {
  const rows = await db.query<{ id: string }>(
    `update punctual.jobs
     set state = 'succeeded', finished_at = now(), locked_by = null, locked_until = null, updated_at = now()
     where id = any($2::bigint[]) and state = 'running' and locked_by = $1
     returning id`,
    [workerId, ids],
  );
  return rows.map((r) => Number(r.id));
}

/** One failed attempt for `jobFailMany`. */
export interface JobFailure {
  id: number;
  message: string;
  stack: string | null;
  /** Delay before the retry, when attempts remain. */
  retry_delay_ms: number;
  /** False for failures that no retry can fix (a payload that fails its schema). */
  retryable: boolean;
}

/**
 * Records failed attempts, fenced like `jobCompleteMany`. A job with attempts left
 * (and no cancel request) goes back to pending at now + its delay; otherwise it ends
 * `failed`, or `cancelled` when a cancel was requested while it ran. The last error
 * is kept on the row either way.
 */
export async function jobFailMany(db: Queryable, workerId: string, failures: readonly JobFailure[]) {
  return db.query<{ id: string; state: JobState; run_at: Date }>(
    `update punctual.jobs as j
     set state = case
           when j.cancel_requested_at is not null then 'cancelled'::punctual.job_state
           when f.retryable and j.attempts < j.max_attempts then 'pending'::punctual.job_state
           else 'failed'::punctual.job_state end,
         run_at = case when f.retryable and j.attempts < j.max_attempts and j.cancel_requested_at is null
           then now() + f.retry_delay_ms * interval '1 millisecond' else j.run_at end,
         finished_at = case when f.retryable and j.attempts < j.max_attempts and j.cancel_requested_at is null
           then null else now() end,
         last_error = f.message, last_error_stack = f.stack,
         locked_by = null, locked_until = null, updated_at = now()
     from jsonb_to_recordset($2::jsonb)
       as f(id bigint, message text, stack text, retry_delay_ms integer, retryable boolean)
     where j.id = f.id and j.state = 'running' and j.locked_by = $1
     returning j.id, j.state, j.run_at`,
    [workerId, JSON.stringify(failures)],
  );
}

/**
 * Hands running jobs back to pending, due now, without waiting for their lease to
 * expire: used when a worker stops with handlers that did not finish in time. The
 * attempt counts. Fenced like `jobCompleteMany`.
 */
export async function jobReleaseMany(db: Queryable, workerId: string, ids: readonly number[]) {
  const rows = await db.query<{ id: string }>(
    `update punctual.jobs
     set state = 'pending', run_at = now(), locked_by = null, locked_until = null, updated_at = now(),
         last_error = 'released: the worker stopped before the handler finished'
     where id = any($2::bigint[]) and state = 'running' and locked_by = $1
     returning id`,
    [workerId, ids],
  );
  return rows.map((r) => Number(r.id));
}
