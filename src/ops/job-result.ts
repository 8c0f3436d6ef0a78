/**
 * The `result` column of one job: what its last attempt left for operators (a
 * handler's return value, a built-in task's record). Kept apart from `getJob` so that
 * the job's other fields, and `punctual show --json`, stay as documented.
 */
import { toQueryable, type Executor } from "../executor.js";

/**
 * The job's `result` (JSON), or null when it has none or the job does not exist. One
 * primary-key lookup.
 *
 * @example
 * const result = await getJobResult(pool, 42);
 */
export async function getJobResult(executor: Executor, id: number): Promise<unknown> {
  const [row] = await toQueryable(executor).query<{ result: unknown }>("select result from punctual.jobs where id = $1", [id]);
  return row?.result ?? null;
}
