/**
 * How many jobs a filter matches, read up to a bound: what the dashboard's bulk-action
 * confirmation says ("retry 37 failed jobs of task X"). Never a `count(*)` over the
 * table: each state is counted through its own index, and at most `limit` rows each.
 */
import { z } from "zod";
import { toQueryable, type Executor } from "../executor.js";
import { jobState } from "../schema.js";
import { zodError } from "../tasks.js";
import { checkFilter, filterConditions, Params, type JobFilter } from "./filter.js";
import type { BoundedCount } from "./stats.js";

/** The default bound of `countJobs`, per state (as `jobStats`). */
export const COUNT_LIMIT_DEFAULT = 10_000;

const limitSchema = z
  .int({ error: "must be an integer" })
  .min(1, "must be at least 1")
  .max(10_000_000, "must be at most 10000000")
  .default(COUNT_LIMIT_DEFAULT);

/**
 * Counts the jobs `filter` matches, reading at most `limit` rows per state (a filter
 * with no state counts each of the five). One statement, one snapshot. Each state is
 * its own subquery with the state as a literal, so that each reads that state's
 * partial index (pending: the claim index; running: the lease index; failed and
 * cancelled: `jobs_failed_cancelled_idx`; succeeded: the finished index); task, queue
 * and key filters narrow those scans. `capped` means at least `count`: some state had
 * `limit` matches or more.
 *
 * @example
 * const { count, capped } = await countJobs(pool, { state: "failed", task: "send-email" });
 */
export async function countJobs(executor: Executor, filter: JobFilter = {}, options: { limit?: number } = {}): Promise<BoundedCount> {
  const parsed = limitSchema.safeParse(options.limit);
  if (!parsed.success) throw zodError("limit", parsed.error);
  const limit = parsed.data;
  const checked = checkFilter(filter);
  const params = new Params();
  const size = params.add(limit);
  const parts = (checked.states ?? jobState.enumValues).map((state) => {
    const conditions = filterConditions({ ...checked, states: [state] }, params);
    return `(select count(*) from (select 1 from punctual.jobs as j where ${conditions.join(" and ")} limit ${size}) as x)`;
  });
  const [row] = await toQueryable(executor).query<{ counts: string[] }>(
    `select array[${parts.join(", ")}]::bigint[]::text[] as counts`,
    params.values,
  );
  const counts = row!.counts.map(Number);
  return { count: counts.reduce((a, b) => a + b, 0), capped: counts.some((n) => n >= limit) };
}
