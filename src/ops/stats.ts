/**
 * The shape of the table at a glance: counts by state and queue, the backlog's age per
 * queue, failures in the last hour. Every count is bounded (at most `countLimit` rows
 * are read per state, per priority for the due backlog), and each comes from a partial
 * index of its state, so a call costs the same on a table of a thousand rows or of
 * ten million: no `count(*)` over the table.
 */
import { z } from "zod";
import { toQueryable, type Executor } from "../executor.js";
import { PRIORITY_MAX, PRIORITY_MIN, type JobState } from "../schema.js";
import { zodError } from "../tasks.js";

/** A count read up to a bound: `capped` means there are at least `count`, maybe more. */
export interface BoundedCount {
  count: number;
  capped: boolean;
}

/** One queue's live jobs. */
export interface QueueStats {
  queue: string;
  /** Pending and due now: the backlog. */
  due: BoundedCount;
  /** Pending, due later. */
  scheduled: BoundedCount;
  /** Held by workers: running, or claimed and waiting in a worker's buffer. */
  running: BoundedCount;
  /** The `run_at` of the queue's oldest due job, and how long ago that was (by the database's clock): what a pod autoscaler reads. */
  oldestDueAt: Date | null;
  oldestDueAgeMs: number | null;
  /** Jobs of the queue that ended `failed` in the last hour. */
  failedLastHour: BoundedCount;
}

export interface JobStats {
  /** The database's clock when the counts were read (one snapshot). */
  at: Date;
  /** The bound each count was read up to. */
  countLimit: number;
  /** Jobs by state. */
  states: Record<JobState, BoundedCount>;
  /** Live jobs by queue, for every queue that has pending, running or recently failed jobs; by name. */
  queues: QueueStats[];
  /** Jobs that ended `failed` in the last hour. */
  failedLastHour: BoundedCount;
}

export const STATS_COUNT_LIMIT_DEFAULT = 10_000;

const countLimitSchema = z
  .int({ error: "must be an integer" })
  .min(1, "must be at least 1")
  .max(10_000_000, "must be at most 10000000")
  .default(STATS_COUNT_LIMIT_DEFAULT);

/**
 * Reads the counts in one statement (one snapshot, so they agree with each other).
 * Each part reads at most `countLimit` rows through the index of its state:
 * - due and scheduled: the claim index, probed once per priority (`run_at <= now()`,
 *   then `run_at > now()`), like the claim; the due probes are in `run_at` order, so
 *   the oldest due job of each priority is always read;
 * - running: the lease index;
 * - succeeded: the finished index, newest first; failed and cancelled:
 *   `jobs_failed_cancelled_idx`; the last hour's failures: `jobs_failed_at_idx`.
 * A queue's numbers come from the rows read, so when a part is capped, a queue's
 * count in that part is a lower bound (`capped` is set on every queue's count of it),
 * and its oldest due job is exact unless the due part is capped.
 *
 * @example
 * const stats = await jobStats(pool);
 * for (const q of stats.queues) console.log(q.queue, q.due.count, q.oldestDueAgeMs);
 */
export async function jobStats(executor: Executor, options: { countLimit?: number } = {}): Promise<JobStats> {
  const parsed = countLimitSchema.safeParse(options.countLimit);
  if (!parsed.success) throw zodError("countLimit", parsed.error);
  const limit = parsed.data;
  const rows = await toQueryable(executor).query<{
    part: string;
    queue: string | null;
    n: string;
    read: string;
    oldest: Date | null;
    age_ms: number | null;
    at: Date;
  }>(
    `with
     due as (
       select d.queue, d.run_at, d.priority from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
       cross join lateral (
         select j.queue, j.run_at, j.priority from punctual.jobs as j
         where j.state = 'pending' and j.priority = p.priority and j.run_at <= now()
         order by j.run_at limit $1
       ) as d
     ),
     scheduled as (
       select s.queue, s.priority from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
       cross join lateral (
         select j.queue, j.priority from punctual.jobs as j
         where j.state = 'pending' and j.priority = p.priority and j.run_at > now()
         order by j.run_at limit $1
       ) as s
     ),
     running as (select queue from punctual.jobs where state = 'running' limit $1),
     failed_hour as (
       select queue from punctual.jobs where state = 'failed' and finished_at >= now() - interval '1 hour' limit $1
     ),
     -- most: the rows one probe returned; a part is capped when a probe returned its whole bound.
     parts as (
       select 'due' as part, queue, count(*) as n, min(run_at) as oldest,
              (select coalesce(max(c), 0) from (select count(*) as c from due group by priority) as x) as most
       from due group by queue
       union all
       select 'scheduled', queue, count(*), null,
              (select coalesce(max(c), 0) from (select count(*) as c from scheduled group by priority) as x)
       from scheduled group by queue
       union all
       select 'running', queue, count(*), null, (select count(*) from running)
       from running group by queue
       union all
       select 'failed_hour', queue, count(*), null, (select count(*) from failed_hour)
       from failed_hour group by queue
     )
     select part, queue, n, most as read, oldest,
            extract(epoch from (now() - oldest)) * 1000 as age_ms, now() as at
     from parts
     union all
     select 'state:' || s.state, null, s.n, s.n, null, null, now()
     from (
       -- In finished_at order, so that the finished index drives it: a scan of the table
       -- would stop after $1 rows too, unless succeeded rows were rare at its start.
       select 'succeeded' as state,
              (select count(*) from (select 1 from punctual.jobs where state = 'succeeded' order by finished_at desc limit $1) as x) as n
       union all
       select 'failed', (select count(*) from (select 1 from punctual.jobs where state = 'failed' limit $1) as x)
       union all
       select 'cancelled', (select count(*) from (select 1 from punctual.jobs where state = 'cancelled' limit $1) as x)
     ) as s
     union all
     select 'now', null, 0, 0, null, null, now()`,
    [limit],
  );
  const at = rows.find((r) => r.part === "now")!.at;
  const capped = (part: string) => rows.some((r) => r.part === part && Number(r.read) >= limit);
  const bounded = (count: number, part: string): BoundedCount => ({ count, capped: capped(part) });
  const sum = (part: string) => rows.filter((r) => r.part === part).reduce((total, r) => total + Number(r.n), 0);
  const stateCount = (state: string): BoundedCount => {
    const n = Number(rows.find((r) => r.part === `state:${state}`)!.n);
    return { count: n, capped: n >= limit };
  };
  const queues = new Map<string, QueueStats>();
  const zero = (): BoundedCount => ({ count: 0, capped: false });
  for (const row of rows) {
    if (row.queue === null) continue;
    let q = queues.get(row.queue);
    if (!q) {
      q = { queue: row.queue, due: zero(), scheduled: zero(), running: zero(), oldestDueAt: null, oldestDueAgeMs: null, failedLastHour: zero() };
      queues.set(row.queue, q);
    }
    const count = bounded(Number(row.n), row.part);
    if (row.part === "due") {
      q.due = count;
      q.oldestDueAt = row.oldest;
      q.oldestDueAgeMs = row.age_ms === null ? null : Math.max(0, Math.round(Number(row.age_ms)));
    } else if (row.part === "scheduled") q.scheduled = count;
    else if (row.part === "running") q.running = count;
    else if (row.part === "failed_hour") q.failedLastHour = count;
  }
  // Parts with no rows at all still say whether they were capped (they were not).
  for (const q of queues.values()) {
    for (const [field, part] of [["due", "due"], ["scheduled", "scheduled"], ["running", "running"], ["failedLastHour", "failed_hour"]] as const) {
      q[field] = { count: q[field].count, capped: capped(part) };
    }
  }
  return {
    at,
    countLimit: limit,
    states: {
      pending: { count: sum("due") + sum("scheduled"), capped: capped("due") || capped("scheduled") },
      running: bounded(sum("running"), "running"),
      succeeded: stateCount("succeeded"),
      failed: stateCount("failed"),
      cancelled: stateCount("cancelled"),
    },
    queues: [...queues.values()].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0)),
    failedLastHour: bounded(sum("failed_hour"), "failed_hour"),
  };
}
