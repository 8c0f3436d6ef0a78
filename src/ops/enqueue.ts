/**
 * Enqueueing by task name and JSON, for operators and scripts (the CLI's `enqueue`):
 * the path SQL callers take. No task list and no zod schema here, so the payload is
 * checked only as SQL checks it (JSON, at most 1 MiB); the worker checks it against the
 * task's schema before the handler runs, and a payload that fails fails the job at once,
 * without retries. A task name no worker runs stays pending.
 */
import type { EnqueueResult, OnConflict } from "../client.js";
import { toQueryable, type Executor } from "../executor.js";
import { jobGetLiveByKey } from "../sql/jobs.js";

export interface EnqueueJsonOptions {
  key?: string;
  /** When it becomes due: an ISO 8601 date-time with a zone (or a Date). */
  runAt?: Date | string;
  /** Or in how many milliseconds, by the database's clock. */
  delayMs?: number;
  queue?: string;
  /** -10..10; a string is read as SQL reads a JSON number (`"5"`). */
  priority?: number | string;
  maxAttempts?: number | string;
  onConflict?: OnConflict | string;
}

/**
 * Enqueues one job as `punctual.enqueue` does: its input checks
 * (`punctual.check_input`, errors naming the parameter, SQLSTATE 22023), then
 * `punctual.enqueue_many`, whose result says whether the job was inserted, replaced
 * a pending job with the key, or kept the live one. Absent options take the SQL
 * defaults. Two statements, neither opening a transaction: inside the caller's, they
 * join it.
 *
 * @example
 * await enqueueJson(pool, "send-email", '{"to": "ada@example.com"}', { key: "welcome:ada", delayMs: 600_000 });
 */
export async function enqueueJson(
  executor: Executor,
  task: string,
  payloadJson: string,
  options: EnqueueJsonOptions = {},
): Promise<EnqueueResult> {
  const db = toQueryable(executor);
  const runAt = options.runAt instanceof Date ? options.runAt.toISOString() : options.runAt;
  const [checked] = await db.query<{ jobs: string }>(
    `select input.jobs::text as jobs, punctual.check_input('punctual.enqueue', input.jobs, false, true, $8) as ok
     from (select jsonb_build_array(jsonb_build_object(
             'task', $1::text, 'payload', $2::jsonb,
             'run_at', coalesce($3::text, (now() + $4::float8 * interval '1 millisecond')::text),
             'key', $5::text, 'queue', $6::text, 'priority', $7::text, 'max_attempts', $9::text)) as jobs) as input`,
    [
      task,
      payloadJson,
      runAt ?? null,
      options.delayMs ?? null,
      options.key ?? null,
      options.queue ?? null,
      options.priority === undefined ? null : String(options.priority),
      options.onConflict ?? "replace",
      options.maxAttempts === undefined ? null : String(options.maxAttempts),
    ],
  );
  const [row] = await db.query<{ id: string | null; key: string | null; state: EnqueueResult["state"] | null; run_at: Date | null; outcome: EnqueueResult["outcome"] }>(
    "select id, key, state, run_at, outcome from punctual.enqueue_many($1::jsonb, $2)",
    [checked!.jobs, options.onConflict ?? "replace"],
  );
  if (row!.id !== null) return { id: Number(row!.id), key: row!.key, state: row!.state!, runAt: row!.run_at!, outcome: row!.outcome };
  // Kept, but the live job was committed after the statement's snapshot: read it again.
  const live = await jobGetLiveByKey(db, row!.key!);
  if (!live) throw new Error(`the live job with key "${row!.key}" vanished during enqueue; retry`);
  return { id: Number(live.id), key: row!.key, state: live.state as EnqueueResult["state"], runAt: live.run_at as Date, outcome: "kept" };
}
