/**
 * The statements the test helpers run on `punctual.jobs`. Test-only, so they live
 * beside the helpers rather than in `src/sql/` with the runtime statements; values
 * always travel as parameters.
 */
import type { Queryable } from "../executor.js";
import { JOB_COLUMNS, toJob, type Job } from "../job.js";
import type { JobState } from "../schema.js";

/** A row of `punctual.jobs` as the test helpers report it: a `Job` with its periodic rule and slot. */
export interface EnqueuedJob extends Job {
  /** For a periodic job, the slot this occurrence stands for. */
  slotAt: Date | null;
  cron: string | null;
  tz: string | null;
  everyMs: number | null;
}

/** Jobs matching every filter given (null: any), in insertion order. */
export async function testJobsList(
  db: Queryable,
  filter: { task: string | null; queue: string | null; key: string | null; states: readonly JobState[] | null },
): Promise<EnqueuedJob[]> {
  const rows = await db.query(
    `select ${JOB_COLUMNS}, slot_at, cron, tz, every_ms
     from punctual.jobs
     where ($1::text is null or task = $1) and ($2::text is null or queue = $2) and ($3::text is null or key = $3)
       and ($4::text[] is null or state::text = any($4::text[]))
     order by id`,
    [filter.task, filter.queue, filter.key, filter.states],
  );
  return rows.map((row) => ({
    ...toJob(row),
    slotAt: (row.slot_at as Date | null) ?? null,
    cron: (row.cron as string | null) ?? null,
    tz: (row.tz as string | null) ?? null,
    everyMs: row.every_ms === null || row.every_ms === undefined ? null : Number(row.every_ms),
  }));
}

/** How many jobs in `states` each task has, most first: what a failed assertion lists when its task has none. */
export async function testJobsCountByTask(db: Queryable, states: readonly JobState[] | null) {
  const rows = await db.query<{ task: string; count: string }>(
    `select task, count(*) as count from punctual.jobs
     where $1::text[] is null or state::text = any($1::text[])
     group by task order by count(*) desc, task limit 20`,
    [states],
  );
  return rows.map((r) => ({ task: r.task, count: Number(r.count) }));
}

/** The filter of the jobs `drain` runs: pending, of its tasks, in its queues (null: any queue). */
const DRAIN_SCOPE = `state = 'pending' and task = any($1::text[]) and ($2::text[] is null or queue = any($2::text[]))`;

/**
 * What `drain` would run next: pending jobs of its tasks due by `asOf` (null: by the
 * database's clock), or among `again` (retries it runs at once); their count and queues.
 */
export async function testDrainDue(
  db: Queryable,
  tasks: readonly string[],
  queues: readonly string[] | null,
  asOf: Date | null,
  again: readonly number[],
): Promise<{ count: number; queues: string[] }> {
  const [row] = await db.query<{ count: string; queues: string[] | null }>(
    `select count(*) as count, array_agg(distinct queue) as queues from punctual.jobs
     where ${DRAIN_SCOPE} and (run_at <= coalesce($3::timestamptz, now()) or id = any($4::bigint[]))`,
    [tasks, queues, asOf, again],
  );
  return { count: Number(row?.count ?? 0), queues: row?.queues ?? [] };
}

/**
 * A row `testDrainMakeDue` moved: its `run_at` before (`frame`) and after (`shifted`),
 * as microseconds since the epoch (decimal text), so that they travel back to the
 * database exactly: a JavaScript Date would drop the microseconds and the comparison
 * that guards the restore would never match.
 */
export interface ShiftedRow {
  id: number;
  frameUs: string;
  shiftedUs: string;
}

/** A timestamptz as exact microseconds since the epoch, and back. */
const TO_US = (column: string) => `(extract(epoch from ${column}) * 1000000)::bigint::text`;
const FROM_US = (us: string) => `(timestamptz 'epoch' + ${us} * interval '1 microsecond')`;

/**
 * Makes what `drain` runs next due on the database's clock, the only clock the
 * worker's claim reads. With `asOf`, every pending job due by then moves by the same
 * amount (`now() - asOf`, not positive), so they keep their order and spacing, and
 * those already due stay ahead of those brought forward. Jobs in `again` (retries run
 * at once) not due by then are due now, after all of those. Returns the rows moved,
 * the database's clock, and the highest id then (rows above it were inserted during
 * the round).
 */
export async function testDrainMakeDue(
  db: Queryable,
  tasks: readonly string[],
  queues: readonly string[] | null,
  asOf: Date | null,
  again: readonly number[],
): Promise<{ rows: ShiftedRow[]; dbNow: Date; maxId: number }> {
  const rows = await db.query<{ id: string; frame_us: string; shifted_us: string; db_now: Date; max_id: string | null }>(
    `with due as (
       select id, run_at from punctual.jobs
       where ${DRAIN_SCOPE}
         and (($3::timestamptz is not null and run_at <= $3::timestamptz) or (id = any($4::bigint[]) and run_at > now()))
       for update
     ),
     moved as (
       update punctual.jobs as j
       set run_at = case when $3::timestamptz is not null and d.run_at <= $3::timestamptz
                         then d.run_at + (now() - $3::timestamptz) else now() end
       from due as d
       where j.id = d.id
       returning j.id, ${TO_US("d.run_at")} as frame_us, ${TO_US("j.run_at")} as shifted_us
     )
     select m.id, m.frame_us, m.shifted_us, now() as db_now, (select max(id) from punctual.jobs) as max_id
     from (select 1) as one left join moved as m on true`,
    [tasks, queues, asOf, again],
  );
  const first = rows[0]!;
  return {
    rows: rows.filter((r) => r.id !== null).map((r) => ({ id: Number(r.id), frameUs: r.frame_us, shiftedUs: r.shifted_us })),
    dbNow: first.db_now,
    maxId: Number(first.max_id ?? 0),
  };
}

/**
 * Puts the `run_at` of moved rows back where it was, for rows that still hold the
 * moved value and are not running: a finished job then reads the time it was due, as
 * after a real worker. A row whose `run_at` the worker rewrote (a retry, a placed
 * schedule) is left alone. Returns the ids put back.
 */
export async function testDrainRestore(db: Queryable, rows: readonly ShiftedRow[]): Promise<number[]> {
  if (rows.length === 0) return [];
  const restored = await db.query<{ id: string }>(
    `update punctual.jobs as j set run_at = ${FROM_US("r.frame_us")}
     from unnest($1::bigint[], $2::bigint[], $3::bigint[]) as r(id, shifted_us, frame_us)
     where j.id = r.id and j.run_at = ${FROM_US("r.shifted_us")} and j.state::text <> 'running'
     returning j.id`,
    [rows.map((r) => r.id), rows.map((r) => r.shiftedUs), rows.map((r) => r.frameUs)],
  );
  return restored.map((r) => Number(r.id));
}

/**
 * Moves times the worker measured from the database's clock into the frame of `asOf`
 * by `offsetMs` (asOf − the clock when the round began): the `run_at` of pending
 * retries in `retried`, and the `run_at` and `slot_at` of fixed-delay occurrences
 * inserted after `maxId`. Without it, a retry's backoff or a fixed delay would count
 * from the real now, which lies before `asOf`, and such jobs would fall due again and
 * again within the drain.
 */
export async function testDrainTranslate(
  db: Queryable,
  tasks: readonly string[],
  retried: readonly number[],
  maxId: number,
  offsetMs: number,
): Promise<void> {
  await db.query(
    `update punctual.jobs
     set run_at = run_at + $4 * interval '1 millisecond',
         slot_at = case when id > $3 then slot_at + $4 * interval '1 millisecond' else slot_at end
     where state = 'pending' and task = any($1::text[])
       and (id = any($2::bigint[]) or (id > $3 and every_ms is not null and fixed_delay))`,
    [tasks, retried, maxId, offsetMs],
  );
}

/** Payload and slot of jobs by id, for `drain`'s report. */
export async function testJobsById(db: Queryable, ids: readonly number[]) {
  if (ids.length === 0) return new Map<number, { payload: unknown; slotAt: Date | null }>();
  const rows = await db.query<{ id: string; payload: unknown; slot_at: Date | null }>(
    "select id, payload, slot_at from punctual.jobs where id = any($1::bigint[])",
    [ids],
  );
  return new Map(rows.map((r) => [Number(r.id), { payload: r.payload, slotAt: r.slot_at }]));
}

/**
 * Whether a drain round is over: no pending job of its tasks and queues is due on the
 * database's clock, and none is running under the round's worker.
 */
export async function testDrainIdle(db: Queryable, tasks: readonly string[], queues: readonly string[], workerId: string) {
  const [row] = await db.query<{ due: boolean; mine: boolean }>(
    `select exists (select 1 from punctual.jobs
                    where state = 'pending' and task = any($1::text[]) and queue = any($2::text[]) and run_at <= now()) as due,
            exists (select 1 from punctual.jobs where state = 'running' and locked_by = $3) as mine`,
    [tasks, queues, workerId],
  );
  return !row!.due && !row!.mine;
}
