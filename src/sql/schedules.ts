/** Statements on periodic schedules (rows of `punctual.jobs` that carry a rule). */
import type { Queryable } from "../executor.js";
import type { JobState } from "../schema.js";
import type { RuleColumns } from "../schedule/rule.js";

/** One schedule for `jobScheduleMany`, in the field names of `punctual.schedule_many`. */
export interface ScheduleInsert extends RuleColumns {
  key: string;
  task: string;
  queue: string;
  priority: number;
  max_attempts: number;
  declared: boolean;
  slot_at: Date | null;
}

export interface ScheduleRow {
  id: string | null;
  key: string;
  state: JobState | null;
  run_at: Date | null;
  slot_at: Date | null;
  outcome: "inserted" | "updated" | "unchanged";
}

/**
 * Creates or updates schedules through `punctual.schedule_many`
 * (drizzle/0002_schedule_functions.sql), which holds the semantics for SQL and
 * TypeScript callers alike. Payloads travel as already-serialised JSON text.
 */
export async function jobScheduleMany(
  db: Queryable,
  schedules: readonly ScheduleInsert[],
  payloadsJson: readonly string[],
): Promise<ScheduleRow[]> {
  const elements = schedules.map((s, i) => `${JSON.stringify(s).slice(0, -1)},"payload":${payloadsJson[i]}}`);
  return db.query<ScheduleRow & Record<string, unknown>>(
    "select id, key, state, run_at, slot_at, outcome from punctual.schedule_many($1::jsonb) order by ord",
    [`[${elements.join(",")}]`],
  );
}

/**
 * Ends the declared schedules whose key is not in `keys`: a pending occurrence is
 * cancelled; a running one is marked so that it finishes and nothing follows it.
 * Schedules created at run time (`declared = false`) are never touched.
 */
export async function jobRemoveUndeclared(db: Queryable, keys: readonly string[]) {
  return db.query<{ key: string; state: JobState }>(
    `update punctual.jobs
     set state = case when state = 'pending' then 'cancelled'::punctual.job_state else state end,
         finished_at = case when state = 'pending' then now() else finished_at end,
         cancel_requested_at = now(), updated_at = now()
     where declared and state in ('pending', 'running') and cancel_requested_at is null
       and key <> all($1::text[])
     returning key, state`,
    [keys],
  );
}

/** Serialises reconcilers: only one process reconciles declared schedules at a time. */
export async function scheduleLockReconcile(db: Queryable) {
  await db.query("select pg_advisory_xact_lock($1)", [7_160_414_211_503_313]);
}
