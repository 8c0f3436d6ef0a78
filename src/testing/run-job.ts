import { pino } from "pino";
import { ValidationError } from "../errors.js";
import { toQueryable, type Executor } from "../executor.js";
import type { Logger } from "../logger.js";
import { isTask, parsePayload, payloadToJson, type JobContext, type PayloadInput, type PayloadSchema, type Task } from "../tasks.js";

/** Options of `runJob`: what the handler's `ctx` holds instead of the defaults. */
export interface RunJobOptions {
  /**
   * Fields of `ctx.job`. Defaults: `id` 0 (no row), `queue`, `priority` and
   * `maxAttempts` from the task (else "default", 0, 5), `key` null, `attempt` 1, `runAt`
   * now, `slot` null, `late` false. Set `attempt` to test a handler's last-attempt
   * behaviour, `slot` for a periodic one.
   */
  job?: Partial<JobContext["job"]>;
  /** `ctx.signal`. Default: a signal that never fires. Pass your own to test a handler's abort path. */
  signal?: AbortSignal;
  /** `ctx.logger`, bound to the job. Default: a silent pino logger. */
  logger?: Logger;
  /**
   * `ctx.complete(tx)`. Default: runs `select 1` on `tx` (so it fails, as the real one
   * would, on something that is not an executor or on an aborted transaction) and
   * records nothing: there is no row to complete. Replace it, for instance, with one
   * that throws `LeaseLostError` to test the handler's rollback path.
   */
  complete?: (tx: Executor) => Promise<void>;
}

/**
 * Runs a task's handler in this process, as a worker would run a job with this
 * payload, and returns what the handler returns (or throws what it throws). The
 * payload goes through what a job's payload goes through: the task's schema and the
 * JSON checks of `enqueue` (a `ValidationError` naming the field), a JSON round trip,
 * and the schema again, whose output the handler receives (defaults and transforms
 * applied, dates as the schema parses strings). No database, no row, no retries: a
 * handler that needs a database uses its own. `ctx` has every field a worker gives.
 *
 * @example
 * await runJob(sendEmail, { to: "ada@example.com", subject: "Welcome" });
 * await expect(runJob(sendEmail, { to: "bounce@example.com", subject: "x" }, { job: { attempt: 5 } })).rejects.toThrow(/bounced/);
 */
export async function runJob<S extends PayloadSchema>(
  task: Task<S>,
  payload: PayloadInput<S>,
  options: RunJobOptions = {},
): Promise<unknown> {
  if (!isTask(task)) throw new ValidationError("task", "must be a task made by defineTask");
  const text = await payloadToJson(task, payload, "payload");
  const parsed = await parsePayload(task.payload, JSON.parse(text), "payload");
  if (!parsed.success) throw parsed.error;
  const job: JobContext["job"] = {
    id: 0,
    task: task.name,
    queue: task.queue ?? "default",
    key: null,
    priority: task.priority ?? 0,
    attempt: 1,
    maxAttempts: task.maxAttempts ?? 5,
    runAt: new Date(),
    slot: null,
    late: false,
    ...options.job,
  };
  const ctx: JobContext = {
    job,
    signal: options.signal ?? new AbortController().signal,
    logger: (options.logger ?? pino({ level: "silent" })).child({ job: job.id, task: job.task }),
    complete:
      options.complete ??
      (async (tx) => {
        await toQueryable(tx).query("select 1");
      }),
  };
  return task.run(parsed.data as never, ctx);
}
