/**
 * What finished lately, by time bucket: the dashboard's "last hour" chart. Read from
 * the finished-time indexes alone (index-only scans once vacuum has marked the pages
 * visible), newest first and bounded, so a busy hour costs at most `rowLimit` index
 * entries, not a scan of every success kept for retention.
 */
import { z } from "zod";
import { toQueryable, type Executor } from "../executor.js";
import { zodError } from "../tasks.js";
import type { BoundedCount } from "./stats.js";

/** One bucket: the jobs that finished in `[start, end)`. */
export interface ThroughputBucket {
  start: Date;
  end: Date;
  /** Jobs that ended (succeeded, failed or cancelled). */
  finished: number;
  /** Of those, the ones that ended `failed`. */
  failed: number;
  /** False when the bound was reached before this bucket's start: its counts are lower bounds. */
  complete: boolean;
}

/** What `jobThroughput` read. */
export interface Throughput {
  /** The database's clock: the end of the last bucket. */
  at: Date;
  bucketMs: number;
  /** Oldest first. */
  buckets: ThroughputBucket[];
  /** Jobs that ended in the window, and failed in it. */
  finished: BoundedCount;
  failed: BoundedCount;
}

const optionsSchema = z.strictObject({
  windowMs: z.int({ error: "must be an integer" }).min(60_000, "must be at least 60000").max(7 * 86_400_000, "must be at most a week").default(3_600_000),
  bucketMs: z.int({ error: "must be an integer" }).min(1000, "must be at least 1000").default(300_000),
  rowLimit: z.int({ error: "must be an integer" }).min(1, "must be at least 1").max(10_000_000, "must be at most 10000000").default(100_000),
});

/** `windowMs` (default an hour), `bucketMs` (default 5 minutes), `rowLimit` (default 100,000 index entries per part). */
export type ThroughputOptions = z.input<typeof optionsSchema>;

/**
 * Jobs finished and failed per bucket over the last `windowMs` (default the last hour
 * in 5-minute buckets, the newest ending now). One statement: the finished jobs through
 * `jobs_finished_idx` and the failed ones through `jobs_failed_at_idx`, each newest
 * first and at most `rowLimit` entries; when a part reaches the bound, the buckets
 * older than the oldest entry read are marked incomplete.
 *
 * @example
 * const { buckets } = await jobThroughput(pool);
 * for (const b of buckets) console.log(b.start, b.finished, b.failed);
 */
export async function jobThroughput(executor: Executor, options: ThroughputOptions = {}): Promise<Throughput> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw zodError("", parsed.error);
  const { windowMs, bucketMs, rowLimit } = parsed.data;
  const rows = await toQueryable(executor).query<{ part: string; bucket: number | null; n: string; oldest: Date | null; at: Date }>(
    `with
     finished as (
       select j.finished_at from punctual.jobs as j
       where j.state in ('succeeded', 'failed', 'cancelled') and j.finished_at >= now() - $1::float8 * interval '1 millisecond'
       order by j.finished_at desc limit $3
     ),
     failed as (
       select j.finished_at from punctual.jobs as j
       where j.state = 'failed' and j.finished_at >= now() - $1::float8 * interval '1 millisecond'
       order by j.finished_at desc limit $3
     ),
     parts as (
       select 'finished' as part, finished_at from finished
       union all
       select 'failed', finished_at from failed
     )
     -- Bucket 0 is the newest, ending now; a row finished "in the future" (clock skew) joins it.
     select part, greatest(0, floor(extract(epoch from (now() - finished_at)) * 1000 / $2::float8))::int as bucket,
            count(*) as n, min(finished_at) as oldest, now() as at
     from parts group by 1, 2
     union all
     select 'now', null, 0, null, now()`,
    [windowMs, bucketMs, rowLimit],
  );
  const at = rows.find((r) => r.part === "now")!.at;
  const count = (part: string) => rows.filter((r) => r.part === part).reduce((total, r) => total + Number(r.n), 0);
  const finished: BoundedCount = { count: count("finished"), capped: count("finished") >= rowLimit };
  const failed: BoundedCount = { count: count("failed"), capped: count("failed") >= rowLimit };
  // A part cut by the bound read everything after its oldest entry read, nothing before.
  const oldestRead = (part: string) => Math.min(...rows.filter((r) => r.part === part).map((r) => r.oldest!.getTime()));
  const completeAfter = Math.max(
    finished.capped ? oldestRead("finished") : -Infinity,
    failed.capped ? oldestRead("failed") : -Infinity,
  );
  const total = Math.ceil(windowMs / bucketMs);
  const buckets: ThroughputBucket[] = [];
  for (let k = total - 1; k >= 0; k--) {
    const end = new Date(at.getTime() - k * bucketMs);
    const start = new Date(end.getTime() - bucketMs);
    const n = (part: string) => Number(rows.find((r) => r.part === part && r.bucket === k)?.n ?? 0);
    buckets.push({ start, end, finished: n("finished"), failed: n("failed"), complete: start.getTime() > completeAfter });
  }
  return { at, bucketMs, buckets, finished, failed };
}
