import type pg from "pg";
import { PRIORITY_MAX, PRIORITY_MIN } from "../schema.js";

/** What the queue gauges show for one queue. */
export interface QueueStat {
  queue: string;
  /** Pending jobs due now (`run_at <= now()`), counted up to the cap. */
  due: number;
  /** Seconds since the oldest due pending job became due (database clock); 0 when none is due. */
  oldestDueAgeSeconds: number;
  /** Pending jobs due later, counted up to the cap among the future rows of all queues. */
  scheduled: number;
}

/** Default for `QueueStatsOptions.countCap`. */
export const QUEUE_COUNT_CAP = 10_000;

/**
 * Backlog per queue, in one statement that reads only the pending-only claim index
 * (`jobs_claim_idx`, on (priority, run_at, id); finished rows are not in it):
 * - **oldest due**: per queue, one probe per priority for its earliest due row, as the
 *   claim does (`sql/jobs.ts`);
 * - **due**: per queue, its due rows priority by priority, at most `$2`: exact below the
 *   cap, the cap when the backlog is larger;
 * - **scheduled**: the first `$2` future rows of the whole table, counted by queue. It
 *   does not filter by queue while it scans: that would read every future row of other
 *   queues (a million per-user schedules) to find a few of ours. So counts are exact
 *   while the table holds fewer future rows than the cap, and lower bounds beyond.
 * Future rows beyond the cap and finished rows cost nothing. Like the claim, the due
 * probes step over the due rows of other queues that come first in their priority
 * (the index does not hold the queue); PostgreSQL may read a priority's due rows with a
 * bitmap scan of the index when it expects fewer of them than the cap. `$1`: the queues, `$2`: the cap. The limits
 * are parameters: the statement is not prepared, so each run is planned with them.
 */
export const QUEUE_STATS_SQL = `with future as materialized (
  select queue from punctual.jobs
  where state = 'pending' and run_at > now()
  order by priority, run_at, id
  limit $2
)
select q.queue,
  (select count(*) from (
    select 1
    from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
    cross join lateral (
      select 1 from punctual.jobs
      where state = 'pending' and priority = p.priority and run_at <= now() and queue = q.queue
      order by run_at, id
      limit $2
    ) as d
    limit $2
  ) as due)::int as due,
  (select count(*) from future where future.queue = q.queue)::int as scheduled,
  coalesce(extract(epoch from now() - (
    select min(o.run_at)
    from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
    cross join lateral (
      select run_at from punctual.jobs
      where state = 'pending' and priority = p.priority and run_at <= now() and queue = q.queue
      order by run_at, id
      limit 1
    ) as o
  )), 0)::float8 as oldest_due_age_seconds
from unnest($1::text[]) as q(queue)`;

/** Runs the queue statement once. */
export async function queryQueueStats(
  pool: Pick<pg.Pool, "query">,
  queues: readonly string[],
  cap = QUEUE_COUNT_CAP,
  timeoutMs = 5_000,
): Promise<QueueStat[]> {
  const { rows } = await pool.query<{ queue: string; due: number; scheduled: number; oldest_due_age_seconds: number }>({
    text: QUEUE_STATS_SQL,
    values: [queues, cap],
    // Bounded like the worker's own statements: a scrape never waits on a dead socket.
    query_timeout: timeoutMs,
  } as pg.QueryConfig);
  return rows.map((r) => ({
    queue: r.queue,
    due: r.due,
    scheduled: r.scheduled,
    oldestDueAgeSeconds: Math.max(0, r.oldest_due_age_seconds),
  }));
}

export interface QueueStatsOptions {
  /** Refresh at most this often (ms); scrapes in between read the last result. Default 10,000. */
  intervalMs?: number;
  /** Counts stop here (see `QUEUE_STATS_SQL`). Default 10,000. */
  countCap?: number;
  /** How long a scrape waits for a refresh before it serves the previous result (ms). Default 2,000. */
  waitMs?: number;
}

/**
 * The per-queue numbers for one process, refreshed on demand at most every
 * `intervalMs`, one statement at a time: any number of scrapes (and registries) cost at
 * most one query per interval, and nothing runs while nobody scrapes.
 */
export class QueueStats {
  private last: { at: number; stats: QueueStat[] } | null = null;
  private inFlight: Promise<void> | null = null;
  /** Refreshes that failed (the gauges then show nothing until one succeeds). */
  failures = 0;
  private readonly intervalMs: number;
  private readonly countCap: number;
  private readonly waitMs: number;

  constructor(
    private readonly pool: () => Pick<pg.Pool, "query">,
    private readonly queues: () => readonly string[],
    options: QueueStatsOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.countCap = options.countCap ?? QUEUE_COUNT_CAP;
    this.waitMs = options.waitMs ?? 2_000;
  }

  /**
   * The latest numbers, refreshed first when older than the interval (waiting at most
   * `waitMs` for it; a slower refresh lands for the next scrape). Empty when the last
   * refresh failed: a gauge that is absent says "unknown" better than a stale value.
   */
  async get(): Promise<QueueStat[]> {
    if (!this.last || Date.now() - this.last.at >= this.intervalMs) {
      this.inFlight ??= this.refresh().finally(() => (this.inFlight = null));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.inFlight, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.waitMs)))]);
      clearTimeout(timer);
    }
    return this.last?.stats ?? [];
  }

  private async refresh(): Promise<void> {
    try {
      const stats = await queryQueueStats(this.pool(), this.queues(), this.countCap, Math.max(this.waitMs, 5_000));
      this.last = { at: Date.now(), stats };
    } catch {
      this.failures += 1;
      // Retried at the next scrape, not before: a down database is not queried in a loop.
      this.last = { at: Date.now(), stats: [] };
    }
  }
}
