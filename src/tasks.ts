import type { z } from "zod";
import type { Logger } from "pino";
import { UnknownTaskError, ValidationError } from "./errors.js";
import { toJsonText } from "./json.js";
import type { Executor } from "./executor.js";
import type { BackoffOptions } from "./worker/backoff.js";

/** What a handler learns about the job it runs. */
export interface JobContext {
  job: {
    id: number;
    task: string;
    queue: string;
    key: string | null;
    priority: number;
    /** 1 on the first run, 2 on the first retry, ... */
    attempt: number;
    maxAttempts: number;
    runAt: Date;
    /** For a periodic job, the slot this occurrence stands for (run_at moves on retry; this does not). */
    slot: Date | null;
    /** True when this occurrence's next slot has already come: it runs for a missed slot. */
    late: boolean;
  };
  /** Fires when the worker stops past its drain timeout (and, later, on cancel or lost lease). */
  signal: AbortSignal;
  /** The worker's logger, bound to this job's id and task. */
  logger: Logger;
  /**
   * Records this job's success inside the caller's open transaction `tx` (a pg
   * PoolClient or Client after `BEGIN`, or a drizzle transaction), with the next
   * occurrence of a periodic job: the handler's writes and its completion then commit
   * together or not at all. Call it last, just before the commit. It throws
   * `LeaseLostError` when this worker no longer holds the job (its lease expired and
   * another worker took it over): let that error roll the transaction back, and the
   * writes never happen.
   *
   * @example
   * const client = await pool.connect();
   * try {
   *   await client.query("begin");
   *   await client.query("insert into invoices (order_id) values ($1)", [orderId]);
   *   await ctx.complete(client);
   *   await client.query("commit");
   * } catch (error) {
   *   await client.query("rollback");
   *   throw error;
   * } finally {
   *   client.release();
   * }
   */
  complete(tx: Executor): Promise<void>;
}

/** Job options a task can default; `enqueue` options override them. */
export interface TaskDefaults {
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  backoff?: BackoffOptions;
}

/** The definition passed to `defineTask`. */
export interface TaskDefinition<S extends z.ZodType> extends TaskDefaults {
  /** Unique name, stored in `punctual.jobs.task`: 1-128 letters, digits and `_ . : -`. */
  name: string;
  /**
   * zod schema of the payload, checked at enqueue and again before the handler runs.
   * Recognised by its shape, not its class: any object with zod's `safeParse(value)`
   * (returning `{ success, data }` or `{ success, error: { issues } }`) is accepted, so
   * a schema from the app's own copy of zod works, as do zod 3 and zod mini schemas
   * (these need a cast to zod 4's `ZodType` for TypeScript).
   */
  payload: S;
  /** The handler. Throwing (or rejecting) fails the attempt; it is retried while attempts remain. */
  run: (payload: z.output<S>, ctx: JobContext) => unknown | Promise<unknown>;
}

/** A defined task: pass it to `enqueue` and to `createWorker({ tasks })`. */
export type Task<S extends z.ZodType = z.ZodType> = Readonly<TaskDefinition<S>>;

/** Any task, whatever its payload type; what registries hold. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTask = Task<any>;

const TASK_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const TASK_NAME_RULE = "must be 1-128 letters, digits or _ . : -";

/** Whether a value is a payload schema: anything with a `safeParse` function (see `TaskDefinition.payload`). */
function isSchema(value: unknown): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { safeParse?: unknown }).safeParse === "function"
  );
}

/**
 * Whether a value has the shape of a task made by `defineTask`: a string `name`, a
 * `payload` schema (an object with a `safeParse` function) and a `run` function. Shape,
 * not class or registry, so a task from another copy of Punctual or zod qualifies.
 */
export function isTask(value: unknown): value is AnyTask {
  return whyNotTask(value) === undefined;
}

/** What keeps a value from being a task, for error messages; undefined for a task. */
function whyNotTask(value: unknown): string | undefined {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== "object") return `a ${typeof value}`;
  const task = value as Partial<Record<"name" | "payload" | "run", unknown>>;
  const missing = [
    typeof task.name !== "string" && "a name",
    !isSchema(task.payload) && "a payload schema (safeParse)",
    typeof task.run !== "function" && "a run function",
  ].filter(Boolean);
  return missing.length ? `an object without ${missing.join(" or ")}` : undefined;
}

/** The task-name rule, or why a name breaks it. */
function badTaskName(name: string): string | undefined {
  return TASK_NAME.test(name) ? undefined : `${JSON.stringify(name)} ${TASK_NAME_RULE}`;
}

/** The value as a task (see `isTask`) whose name follows the rule, or a `ValidationError` naming `field`. */
function asTask(value: unknown, field: string, hint: string): AnyTask {
  const why = whyNotTask(value);
  if (why) throw new ValidationError(field, `not a task: ${why}; ${hint}`);
  const badName = badTaskName((value as AnyTask).name);
  if (badName) throw new ValidationError(field, `task name ${badName}`);
  return value as AnyTask;
}

/**
 * Defines a task: a name, a zod schema for its payload, and a handler.
 *
 * @example
 * const sendEmail = defineTask({
 *   name: "send-email",
 *   payload: z.object({ to: z.email(), subject: z.string() }),
 *   run: async ({ to, subject }, { signal }) => mailer.send({ to, subject, signal }),
 * });
 */
export function defineTask<S extends z.ZodType>(definition: TaskDefinition<S>): Task<S> {
  if (typeof definition !== "object" || definition === null) {
    throw new ValidationError("definition", "defineTask takes an object: { name, payload, run }");
  }
  if (typeof definition.name !== "string") throw new ValidationError("name", `must be a string; ${TASK_NAME_RULE}`);
  const badName = badTaskName(definition.name);
  if (badName) throw new ValidationError("name", badName);
  if (!isSchema(definition.payload)) {
    throw new ValidationError("payload", "must be a zod schema (an object with a safeParse function)");
  }
  if (typeof definition.run !== "function") throw new ValidationError("run", "must be a function");
  return Object.freeze({ ...definition });
}

/** Formats zod issues under a field prefix, naming the first failing path. */
export function zodError(prefix: string, error: z.ZodError): ValidationError {
  const issue = error.issues[0]!;
  // An unknown option is named by itself, so a typo points at the typo.
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
  const field = [prefix, ...path.map(String)].filter(Boolean).join(".");
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : "";
  return new ValidationError(field, issue.message + more);
}

/**
 * Validates a payload for `task` and returns its JSON text. The stored JSON is the
 * payload as given, and it must parse again after a JSON round trip, so the worker's
 * own check cannot fail on what enqueue accepted.
 */
export function payloadToJson(task: AnyTask, payload: unknown, field = "payload"): string {
  const parsed = task.payload.safeParse(payload);
  if (!parsed.success) throw zodError(field, parsed.error);
  const text = toJsonText(payload, field);
  const again = task.payload.safeParse(JSON.parse(text));
  if (!again.success) {
    throw new ValidationError(field, `does not survive JSON: ${zodError(field, again.error).message}`);
  }
  return text;
}

/** A set of tasks by name, as clients and workers hold them. */
export class TaskRegistry {
  private readonly byName = new Map<string, AnyTask>();

  constructor(tasks: readonly AnyTask[] = []) {
    if (!Array.isArray(tasks)) throw new ValidationError("tasks", "must be an array of tasks");
    for (const [i, task] of tasks.entries()) {
      asTask(task, `tasks.${i}`, "pass tasks made by defineTask");
      if (this.byName.has(task.name) && this.byName.get(task.name) !== task) {
        throw new ValidationError("tasks", `two different tasks are named "${task.name}"`);
      }
      this.byName.set(task.name, task);
    }
  }

  /**
   * The task for a task object or name. A name must follow the task-name rule and be
   * registered. An object must look like a task made by `defineTask` (see `isTask`),
   * registered or not. Anything else (plain JavaScript callers, names from config) is
   * a `ValidationError` naming `field`, never a TypeError.
   */
  resolve(task: AnyTask | string, field = "task"): AnyTask {
    if (typeof task === "string") {
      const badName = badTaskName(task);
      if (badName) throw new ValidationError(field, badName);
      const found = this.byName.get(task);
      if (!found) throw new UnknownTaskError(task, this.names(), field);
      return found;
    }
    return asTask(task, field, "pass a task made by defineTask, or a task name");
  }

  get(name: string): AnyTask | undefined {
    return this.byName.get(name);
  }

  all(): AnyTask[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
