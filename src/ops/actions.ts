/**
 * What an operator does to jobs: retry failed ones, cancel, run now. On one job (by id
 * or key) or in bulk (every job a filter matches, in batches). The CLI's `retry`,
 * `cancel` and `run-now` and the dashboard's buttons act through these, and the table
 * is their only state.
 */
import { toQueryable, type Executor, type Queryable } from "../executor.js";
import type { JobState } from "../schema.js";
import { jobCancelByKey, jobGetByKey } from "../sql/jobs.js";
import { checkFilter, filterConditions, Params, type CheckedFilter, type JobFilter } from "./filter.js";
import { checkJobRef, resolveJobRef, type JobRef } from "./jobs.js";

/** The jobs an action applies to: one, by id or key, or every job a filter matches. */
export type ActionTarget = JobRef | { filter: JobFilter };

/** A job an action changed, with its state after it. */
export interface ChangedJob {
  id: number;
  key: string | null;
  state: JobState;
}

/** A job the target matched that the action left as it was, with its state and why. */
export interface SkippedJob {
  id: number;
  key: string | null;
  state: JobState;
  reason: string;
}

/**
 * What an action did. For one job that does not exist, both lists are empty; for a
 * job the action does not apply to (retry of a pending job), it is in `skipped`.
 */
export interface ActionResult {
  changed: ChangedJob[];
  skipped: SkippedJob[];
}

/** Rows a bulk action changes per statement: short transactions, short row locks. */
export const ACTION_BATCH = 1000;

/**
 * The states each action applies to: a target's jobs in other states are skipped, and a
 * bulk action reads only its filter's jobs in these states (the dashboard counts them
 * for its confirmation).
 */
export const ACTION_STATES = {
  retry: ["failed"],
  cancel: ["pending", "running"],
  runNow: ["pending"],
} as const satisfies Record<string, readonly JobState[]>;

/** How often a retry batch runs again after racing an enqueue of the same key. */
const KEY_RACE_RETRIES = 3;

/**
 * Puts failed jobs back to pending, due now. Attempts are not reset: the count goes
 * on (`attempts` says how often the job really ran), and a job that used them all gets
 * one more (`max_attempts` becomes `attempts + 1`); one failed early by an error no
 * retry fixes (a payload its schema refuses) keeps the attempts it had left. The last
 * error stays on the row until a later attempt replaces it. Only `failed` jobs are
 * retried; the others are skipped with their state. A job is also skipped when its
 * key has a live (pending or running) job, since a key has at most one: for a
 * schedule's failed occurrence that is the next occurrence (the schedule went on;
 * run the next one early with `runNow`); in bulk, of several failed jobs with one key
 * only the newest is retried. A retried periodic occurrence, when it finishes,
 * schedules the next one as any occurrence does.
 *
 * @example
 * await retryJobs(pool, { id: 42 });
 * await retryJobs(pool, { filter: { state: "failed", task: "send-email", finishedWithinMs: 3_600_000 } });
 */
export async function retryJobs(executor: Executor, target: ActionTarget): Promise<ActionResult> {
  return act(executor, target, ACTION_STATES.retry, retryBatch);
}

/**
 * Cancels live jobs, as `client.cancel` does: a pending job becomes `cancelled` at
 * once; a running one is marked (`cancel_requested_at`), its handler's signal fires,
 * and it ends `cancelled` unless it succeeds, and is not retried. Cancelling a
 * schedule's occurrence ends the schedule: nothing follows it. Finished jobs are
 * skipped. By key, the live job with the key (the same statement as `client.cancel`).
 *
 * @example
 * await cancelJobs(pool, { key: "welcome:ada" });
 * await cancelJobs(pool, { filter: { state: "pending", task: "old-task" } });
 */
export async function cancelJobs(executor: Executor, target: ActionTarget): Promise<ActionResult> {
  if ("key" in target && !("filter" in target)) {
    const db = toQueryable(executor);
    const { key } = checkJobRef(target) as { key: string };
    const rows = await jobCancelByKey(db, key);
    if (rows.length > 0) return { changed: rows.map((r) => ({ id: Number(r.id), key, state: r.state })), skipped: [] };
    // No live job: say what the key's newest job is, if it has one.
    return skippedAsIs(db, key, "not pending or running");
  }
  return act(executor, target, ACTION_STATES.cancel, cancelBatch);
}

/**
 * Makes pending jobs due now (`run_at` = now; one already due keeps its earlier
 * `run_at`). For a periodic occurrence, this occurrence only: its slot stays, so the
 * handler still sees the slot it stands for, and the occurrence after it is placed on
 * the rule's next slot after that one, as if it had run on time; the schedule's later
 * slots do not move. Jobs in other states are skipped.
 *
 * @example
 * await runNow(pool, { key: "weekly-report" });
 */
export async function runNow(executor: Executor, target: ActionTarget): Promise<ActionResult> {
  return act(executor, target, ACTION_STATES.runNow, runNowBatch);
}

type Batch = (db: Queryable, ids: number[]) => Promise<ActionResult>;

/**
 * Resolves the target to ids and applies `batch`. One job: its id (a key means the
 * live job, else the newest finished one). A filter: its matches in `states` (within
 * the filter's own states), newest first, `ACTION_BATCH` at a time, keyset by id, so a
 * job the action puts back to where the filter finds it is not met twice.
 */
async function act(executor: Executor, target: ActionTarget, states: readonly JobState[], batch: Batch): Promise<ActionResult> {
  const db = toQueryable(executor);
  if (!("filter" in target)) {
    const id = await resolveJobRef(db, target);
    if (id === null) return { changed: [], skipped: [] };
    return batch(db, [id]);
  }
  const filter = checkFilter(target.filter);
  const wanted: CheckedFilter = { ...filter, states: states.filter((s) => filter.states?.includes(s) ?? true) };
  const result: ActionResult = { changed: [], skipped: [] };
  if (wanted.states!.length === 0) return result;
  let before: number | null = null;
  for (;;) {
    const params = new Params();
    const conditions = filterConditions(wanted, params);
    if (before !== null) conditions.push(`j.id < ${params.add(before)}`);
    const ids = (
      await db.query<{ id: string }>(
        `select j.id from punctual.jobs as j where ${conditions.join(" and ")} order by j.id desc limit ${ACTION_BATCH}`,
        params.values,
      )
    ).map((r) => Number(r.id));
    if (ids.length === 0) break;
    const done = await batch(db, ids);
    result.changed.push(...done.changed);
    result.skipped.push(...done.skipped);
    before = ids.at(-1)!;
    if (ids.length < ACTION_BATCH) break;
  }
  return result;
}

/** Splits the rows of an action statement into changed and skipped. */
function split(rows: { id: string; key: string | null; state: JobState | null; done: boolean; reason: string | null }[]): ActionResult {
  const result: ActionResult = { changed: [], skipped: [] };
  for (const row of rows) {
    // A job deleted meanwhile (pruned) is neither.
    if (row.state === null) continue;
    const job = { id: Number(row.id), key: row.key, state: row.state };
    if (row.done) result.changed.push(job);
    else result.skipped.push({ ...job, reason: row.reason ?? `is ${row.state}` });
  }
  return result;
}

/**
 * One statement: the failed jobs among `ids` whose key has no live job (and, of
 * several with one key, the newest) go back to pending. The live-key check and the
 * update are one statement, but an enqueue of the same key may commit between them:
 * the unique index then refuses the update (23505), and the batch runs again, seeing
 * that job.
 */
async function retryBatch(db: Queryable, ids: number[]): Promise<ActionResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return split(
        await db.query(
          `with candidates as (
             select j.id, j.key,
                    (select l.id from punctual.jobs as l
                     where l.key = j.key and l.state in ('pending', 'running') limit 1) as live_id,
                    j.key is not null and j.id <> max(j.id) over (partition by j.key) as superseded
             from punctual.jobs as j
             where j.id = any($1::bigint[]) and j.state = 'failed'
           ),
           retried as (
             update punctual.jobs as j
             set state = 'pending', run_at = now(), finished_at = null, started_at = null,
                 max_attempts = greatest(j.max_attempts, j.attempts + 1),
                 locked_by = null, locked_until = null, cancel_requested_at = null, updated_at = now()
             from candidates as c
             where j.id = c.id and c.live_id is null and not c.superseded and j.state = 'failed'
             returning j.id
           )
           select i.id, j.key, case when r.id is not null then 'pending' else j.state end as state,
                  r.id is not null as done,
                  case when j.state <> 'failed' then 'is ' || j.state || ', not failed'
                       when c.live_id is not null then 'its key has a live job (' || c.live_id || ')'
                       when c.superseded then 'a newer failed job with its key is retried'
                  end as reason
           from unnest($1::bigint[]) as i(id)
           left join punctual.jobs as j on j.id = i.id
           left join candidates as c on c.id = i.id
           left join retried as r on r.id = i.id`,
          [ids],
        ),
      );
    } catch (error) {
      if ((error as { code?: string }).code !== "23505" || attempt >= KEY_RACE_RETRIES) throw error;
    }
  }
}

/**
 * The statement of `jobCancelByKey` (src/sql/jobs.ts), by id: pending jobs end
 * `cancelled`, running ones get `cancel_requested_at` (a trigger tells their worker).
 */
async function cancelBatch(db: Queryable, ids: number[]): Promise<ActionResult> {
  return split(
    await db.query(
      `with cancelled as (
         update punctual.jobs
         set state = case when state = 'pending' then 'cancelled'::punctual.job_state else state end,
             finished_at = case when state = 'pending' then now() else finished_at end,
             cancel_requested_at = now(), updated_at = now()
         where id = any($1::bigint[]) and state in ('pending', 'running')
         returning id, state
       )
       select i.id, j.key, coalesce(c.state, j.state) as state, c.id is not null as done,
              case when c.id is null then 'is ' || j.state || ', not pending or running' end as reason
       from unnest($1::bigint[]) as i(id)
       left join punctual.jobs as j on j.id = i.id
       left join cancelled as c on c.id = i.id`,
      [ids],
    ),
  );
}

/** Pending jobs among `ids` become due now; the slot of a periodic one stays. */
async function runNowBatch(db: Queryable, ids: number[]): Promise<ActionResult> {
  return split(
    await db.query(
      `with moved as (
         update punctual.jobs set run_at = least(run_at, now()), updated_at = now()
         where id = any($1::bigint[]) and state = 'pending'
         returning id
       )
       select i.id, j.key, j.state, m.id is not null as done,
              case when m.id is null then 'is ' || j.state || ', not pending' end as reason
       from unnest($1::bigint[]) as i(id)
       left join punctual.jobs as j on j.id = i.id
       left join moved as m on m.id = i.id`,
      [ids],
    ),
  );
}

/** The key's newest job, skipped with its state; nothing when the key has no job. */
async function skippedAsIs(db: Queryable, key: string, why: string): Promise<ActionResult> {
  const row = await jobGetByKey(db, key);
  if (!row) return { changed: [], skipped: [] };
  const state = row.state as JobState;
  return { changed: [], skipped: [{ id: Number(row.id), key, state, reason: `is ${state}, ${why}` }] };
}
