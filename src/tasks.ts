import type { z } from "zod";
import type { Logger } from "pino";
import { UnknownTaskError, ValidationError } from "./errors.js";
import { jsonText } from "./json.js";
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

/**
 * The Standard Schema interface, version 1 (https://standardschema.dev): what zod (3.24
 * and later, 4), valibot, arktype and others implement under the `~standard` key.
 * Declared here, as the spec invites, so that Punctual needs no package for it; it is
 * the same shape as `@standard-schema/spec`'s `StandardSchemaV1`.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": StandardSchemaV1.Props<Input, Output>;
}

export declare namespace StandardSchemaV1 {
  /** The properties under `~standard`. */
  interface Props<Input = unknown, Output = Input> {
    readonly version: 1;
    readonly vendor: string;
    /** Validates a value: the result, or a promise of it for a validator with async checks. */
    readonly validate: (value: unknown) => Result<Output> | Promise<Result<Output>>;
    /** Types only (never present at run time): what `InferInput` and `InferOutput` read. */
    readonly types?: Types<Input, Output> | undefined;
  }
  type Result<Output> = SuccessResult<Output> | FailureResult;
  interface SuccessResult<Output> {
    readonly value: Output;
    readonly issues?: undefined;
  }
  interface FailureResult {
    readonly issues: ReadonlyArray<Issue>;
  }
  interface Issue {
    readonly message: string;
    readonly path?: ReadonlyArray<PropertyKey | PathSegment> | undefined;
  }
  interface PathSegment {
    readonly key: PropertyKey;
  }
  interface Types<Input = unknown, Output = Input> {
    readonly input: Input;
    readonly output: Output;
  }
  type InferInput<Schema extends StandardSchemaV1> = NonNullable<Schema["~standard"]["types"]>["input"];
  type InferOutput<Schema extends StandardSchemaV1> = NonNullable<Schema["~standard"]["types"]>["output"];
}

/**
 * A payload schema: any Standard Schema validator — a zod schema (the documented
 * default), a valibot or arktype schema, or your own object with `~standard.validate`.
 */
export type PayloadSchema = StandardSchemaV1;

/** What `enqueue` and `schedule` accept as the payload of a task with schema `S`. */
export type PayloadInput<S extends PayloadSchema> = StandardSchemaV1.InferInput<S>;

/** What the handler of a task with schema `S` receives: the schema's output (defaults and transforms applied). */
export type PayloadOutput<S extends PayloadSchema> = StandardSchemaV1.InferOutput<S>;

/** The definition passed to `defineTask`. */
export interface TaskDefinition<S extends PayloadSchema> extends TaskDefaults {
  /** Unique name, stored in `punctual.jobs.task`: 1-128 letters, digits and `_ . : -`. */
  name: string;
  /**
   * Schema of the payload, checked at enqueue and again before the handler runs. Any
   * Standard Schema validator (`~standard.validate`, sync or async): zod 4 and 3.24+,
   * valibot, arktype, ... The handler receives the schema's output. Recognised by its
   * shape, not its class, so a schema from the app's own copy of zod works. A zod 3
   * schema older than 3.24 (no `~standard`) is accepted by its `safeParse` at run time
   * (it needs a cast for TypeScript).
   */
  payload: S;
  /**
   * The handler. Throwing (or rejecting) fails the attempt; it is retried while attempts
   * remain, after the backoff, unless the error says otherwise: `PermanentError` (or any
   * error with `permanent: true`) fails the job at once, `RetryAfterError` (or any error
   * with a numeric `retryAfterMs`) sets the delay. What it returns is stored when
   * `storeResult` is set.
   */
  run: (payload: PayloadOutput<S>, ctx: JobContext) => unknown | Promise<unknown>;
  /**
   * Keep what each attempt leaves in the row's `result` column, for operators: the
   * handler's return value on success, the thrown error's `result` property on failure
   * (`PermanentError` and `RetryAfterError` take one). JSON, at most `RESULT_MAX_BYTES`
   * (8 KiB) of it; a larger value is stored as `{ truncated: true, bytes, preview }`,
   * one JSON cannot carry as `{ unstorable: why }`. Each outcome replaces the last one's
   * (null when the attempt left none). Default false: a handler's return value is often
   * incidental (`run: (p) => mailer.send(p)`), and is not written to the table unless
   * the task asks. A success recorded by `ctx.complete(tx)` stores none.
   */
  storeResult?: boolean;
}

/** A defined task: pass it to `enqueue` and to `createWorker({ tasks })`. */
export type Task<S extends PayloadSchema = PayloadSchema> = Readonly<TaskDefinition<S>>;

/** Any task, whatever its payload type; what registries hold. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTask = Task<any>;

const TASK_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const TASK_NAME_RULE = "must be 1-128 letters, digits or _ . : -";

/** The Standard Schema properties of a value, if it has them (version 1, a `validate` function). */
function standardProps(value: unknown): StandardSchemaV1.Props | undefined {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return undefined;
  const props = (value as Partial<StandardSchemaV1>)["~standard"];
  return typeof props === "object" && props !== null && props.version === 1 && typeof props.validate === "function"
    ? props
    : undefined;
}

/** A zod schema without Standard Schema support (zod 3 before 3.24): only `safeParse`. */
interface SafeParseSchema {
  safeParse(value: unknown): { success: true; data: unknown } | { success: false; error: { issues: readonly IssueLike[] } };
}

/** Whether a value is a payload schema (see `TaskDefinition.payload`): Standard Schema, or zod's `safeParse`. */
function isSchema(value: unknown): boolean {
  return (
    standardProps(value) !== undefined ||
    ((typeof value === "object" || typeof value === "function") &&
      value !== null &&
      typeof (value as { safeParse?: unknown }).safeParse === "function")
  );
}

/**
 * Whether a value has the shape of a task made by `defineTask`: a string `name`, a
 * `payload` schema (Standard Schema, or zod's `safeParse`) and a `run` function. Shape,
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
 * Defines a task: a name, a schema for its payload (zod, or any Standard Schema
 * validator such as valibot or arktype), and a handler.
 *
 * @example
 * const sendEmail = defineTask({
 *   name: "send-email",
 *   payload: z.object({ to: z.email(), subject: z.string() }),
 *   run: async ({ to, subject }, { signal }) => mailer.send({ to, subject, signal }),
 * });
 */
export function defineTask<S extends PayloadSchema>(definition: TaskDefinition<S>): Task<S> {
  if (typeof definition !== "object" || definition === null) {
    throw new ValidationError("definition", "defineTask takes an object: { name, payload, run }");
  }
  if (typeof definition.name !== "string") throw new ValidationError("name", `must be a string; ${TASK_NAME_RULE}`);
  const badName = badTaskName(definition.name);
  if (badName) throw new ValidationError("name", badName);
  if (!isSchema(definition.payload)) {
    throw new ValidationError(
      "payload",
      "must be a schema: a Standard Schema validator (zod, valibot, arktype, ...: an object with ~standard.validate) or a zod schema with safeParse",
    );
  }
  if (typeof definition.run !== "function") throw new ValidationError("run", "must be a function");
  return Object.freeze({ ...definition });
}

/** An issue as zod and Standard Schema validators report it: a message, and a path of keys or `{ key }` segments. */
interface IssueLike {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | StandardSchemaV1.PathSegment> | undefined;
  /** zod's issue code, and for `unrecognized_keys` the keys: other validators have neither. */
  readonly code?: string;
  readonly keys?: readonly string[];
}

/**
 * Formats validation issues under a field prefix, naming the first failing path
 * (`payload.to`), with a count of the others. zod's and any Standard Schema
 * validator's issues alike.
 */
export function issuesError(prefix: string, issues: readonly IssueLike[]): ValidationError {
  const issue = issues[0];
  if (!issue) return new ValidationError(prefix, "is invalid");
  const segments = (issue.path ?? []).map((segment) =>
    typeof segment === "object" && segment !== null ? (segment as StandardSchemaV1.PathSegment).key : segment,
  );
  // An unknown option (zod's unrecognized_keys) is named by itself, so a typo points at the typo.
  const path = issue.code === "unrecognized_keys" && issue.keys?.length ? [...segments, issue.keys[0]!] : segments;
  const field = [prefix, ...path.map(String)].filter(Boolean).join(".");
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return new ValidationError(field, issue.message + more);
}

/** Formats zod issues under a field prefix, naming the first failing path. */
export function zodError(prefix: string, error: z.ZodError): ValidationError {
  return issuesError(prefix, error.issues);
}

/** A payload checked by its schema: the schema's output, or a `ValidationError` naming the field. */
export type PayloadCheck = { success: true; data: unknown } | { success: false; error: ValidationError };

/** `then` that stays synchronous for a value that is not a promise. */
function andThen<T, R>(value: T | Promise<T>, next: (value: T) => R): R | Promise<Awaited<R>> {
  return value instanceof Promise ? (value.then(next) as Promise<Awaited<R>>) : next(value);
}

/**
 * Checks `value` against a payload schema, under the field name `field`. Synchronous
 * for a synchronous validator (zod without async refinements, valibot's sync schemas,
 * arktype), a promise for one whose `validate` returns a promise. Through Standard
 * Schema when the schema has it, else zod's `safeParse`; either way zod's issues, and
 * so its messages and field paths, are the same. A validator that throws is reported
 * as a `ValidationError` too, so that a buggy schema fails a job clearly instead of
 * breaking the worker.
 */
export function parsePayload(schema: unknown, value: unknown, field = "payload"): PayloadCheck | Promise<PayloadCheck> {
  try {
    const props = standardProps(schema);
    if (props) {
      const result = props.validate(value);
      return isThenable(result)
        ? Promise.resolve(result).then(
            (r) => standardCheck(field, r),
            (error) => schemaThrew(field, error),
          )
        : standardCheck(field, result);
    }
    const parsed = (schema as SafeParseSchema).safeParse(value);
    return parsed.success ? { success: true, data: parsed.data } : { success: false, error: issuesError(field, parsed.error.issues) };
  } catch (error) {
    return schemaThrew(field, error);
  }
}

function standardCheck(field: string, result: StandardSchemaV1.Result<unknown>): PayloadCheck {
  return result.issues ? { success: false, error: issuesError(field, result.issues) } : { success: true, data: result.value };
}

function schemaThrew(field: string, error: unknown): PayloadCheck {
  return { success: false, error: new ValidationError(field, `the schema threw: ${error instanceof Error ? error.message : String(error)}`) };
}

export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === "function";
}

/**
 * Validates a payload for `task` and returns its JSON text. The stored JSON is the
 * payload as given, and it must pass the schema again after a JSON round trip, so the
 * worker's own check cannot fail on what enqueue accepted. Synchronous for a
 * synchronous validator (errors are thrown at once); a promise for an async one.
 */
export function payloadToJson(task: AnyTask, payload: unknown, field = "payload"): string | Promise<string> {
  return andThen(parsePayload(task.payload, payload, field), (first) => {
    if (!first.success) throw first.error;
    const { text, plain } = jsonText(payload, field);
    // Plain JSON comes back from its text as it went in: the check above holds for it.
    if (plain) return text;
    return andThen(parsePayload(task.payload, JSON.parse(text), field), (again) => {
      if (!again.success) throw new ValidationError(field, `does not survive JSON: ${again.error.message}`);
      return text;
    });
  });
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
