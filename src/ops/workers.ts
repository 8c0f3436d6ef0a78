/**
 * Who holds jobs now: each worker id (`locked_by`) among running rows, with how many
 * jobs it holds and how old and how close to expiry its leases are. Read from the
 * lease index (running rows only), so finished and pending rows cost nothing. A worker
 * that holds nothing does not appear: the table knows workers only by their jobs.
 */
import { z } from "zod";
import { toQueryable, type Executor } from "../executor.js";
import { zodError } from "../tasks.js";

/** One worker, as its running rows show it. */
export interface WorkerSummary {
  /** `locked_by`: the worker's id (default `hostname:pid:random`). */
  workerId: string;
  /** Running rows it holds: started ones and those waiting in its claim-ahead buffer. */
  held: number;
  /** Of those, started (`started_at` set); the rest wait in its buffer. */
  started: number;
  /** The earliest and latest start among its jobs: how long its longest and shortest runs have been going. */
  oldestStartedAt: Date | null;
  newestStartedAt: Date | null;
  /** Its leases' soonest and latest expiry. */
  leaseExpiresFirstAt: Date;
  leaseExpiresLastAt: Date;
  /** Its jobs whose lease has already expired: a dead (or stalled) worker's, waiting for rescue. */
  expired: number;
}

/** What `listWorkers` read. */
export interface WorkerList {
  /** The database's clock, against which ages and expiries are read. */
  at: Date;
  workers: WorkerSummary[];
  /** True when more running rows than `rowLimit` exist: the counts are lower bounds. */
  capped: boolean;
}

const rowLimitSchema = z
  .int({ error: "must be an integer" })
  .min(1, "must be at least 1")
  .max(1_000_000, "must be at most 1000000")
  .default(10_000);

/**
 * Every worker holding running jobs, by id. One statement over at most `rowLimit`
 * running rows (in lease order, through `jobs_lease_idx`), grouped by `locked_by`.
 *
 * @example
 * const { workers, at } = await listWorkers(pool);
 * for (const w of workers) console.log(w.workerId, w.held, w.leaseExpiresFirstAt.getTime() - at.getTime());
 */
export async function listWorkers(executor: Executor, options: { rowLimit?: number } = {}): Promise<WorkerList> {
  const parsed = rowLimitSchema.safeParse(options.rowLimit);
  if (!parsed.success) throw zodError("rowLimit", parsed.error);
  const rowLimit = parsed.data;
  const rows = await toQueryable(executor).query<{
    at: Date;
    read: string;
    locked_by: string | null;
    held: string | null;
    started: string | null;
    oldest_started: Date | null;
    newest_started: Date | null;
    first_expiry: Date | null;
    last_expiry: Date | null;
    expired: string | null;
  }>(
    `with running as (
       select j.locked_by, j.started_at, j.locked_until from punctual.jobs as j
       where j.state = 'running'
       order by j.locked_until limit $1
     )
     select m.at, m.read, w.* from (select now() as at, (select count(*) from running) as read) as m
     left join lateral (
       select coalesce(r.locked_by, '') as locked_by, count(*) as held, count(r.started_at) as started,
              min(r.started_at) as oldest_started, max(r.started_at) as newest_started,
              min(r.locked_until) as first_expiry, max(r.locked_until) as last_expiry,
              count(*) filter (where r.locked_until < m.at) as expired
       from running as r group by 1
     ) as w on true
     order by w.locked_by`,
    [rowLimit],
  );
  const first = rows[0]!;
  return {
    at: first.at,
    capped: Number(first.read) >= rowLimit,
    workers: rows
      .filter((r) => r.held !== null)
      .map((r) => ({
        workerId: r.locked_by!,
        held: Number(r.held),
        started: Number(r.started),
        oldestStartedAt: r.oldest_started,
        newestStartedAt: r.newest_started,
        leaseExpiresFirstAt: r.first_expiry!,
        leaseExpiresLastAt: r.last_expiry!,
        expired: Number(r.expired),
      })),
  };
}
