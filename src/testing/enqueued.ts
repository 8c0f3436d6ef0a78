import { AssertionError } from "node:assert";
import { ValidationError } from "../errors.js";
import { toQueryable, type Executor } from "../executor.js";
import { durationSchema, type Duration } from "../schedule/duration.js";
import { jobState, type JobState } from "../schema.js";
import { isTask, zodError, type AnyTask, type PayloadInput, type PayloadSchema, type Task } from "../tasks.js";
import { mismatch, pretty, type PayloadPattern } from "./match.js";
import { testJobsCountByTask, testJobsList, type EnqueuedJob } from "./sql.js";

export type { EnqueuedJob } from "./sql.js";

/** Which states to look at: one, several, or `"any"`. */
export type StateFilter = JobState | readonly JobState[] | "any";

/** Filters of `listEnqueued`; each one given must hold. */
export interface ListEnqueuedOptions {
  /** A task or a task name. */
  task?: AnyTask | string;
  queue?: string;
  key?: string;
  /** Default `"pending"`: jobs waiting to run. `"any"` for every state. */
  state?: StateFilter;
}

/**
 * The jobs in `punctual.jobs` that match the filters, in the order they were inserted.
 * By default the pending ones: what is waiting to run.
 *
 * @example
 * const jobs = await listEnqueued(pool, { task: sendEmail });
 * expect(jobs.map((j) => j.payload)).toEqual([{ to: "ada@example.com" }]);
 */
export async function listEnqueued(db: Executor, options: ListEnqueuedOptions = {}): Promise<EnqueuedJob[]> {
  return testJobsList(toQueryable(db), {
    task: options.task === undefined ? null : taskName(options.task, "task"),
    queue: options.queue ?? null,
    key: options.key ?? null,
    states: toStates(options.state),
  });
}

/** What else a job must be, besides its task and payload, for `expectEnqueued`. */
export interface ExpectEnqueuedOptions {
  key?: string;
  queue?: string;
  priority?: number;
  /** Default `"pending"`. `["pending", "running"]` for live jobs, `"any"` for all. */
  state?: StateFilter;
  /** Due exactly then (to the millisecond), or within `{ min, max }` (inclusive). */
  runAt?: Date | string | { min?: Date | string; max?: Date | string };
  /**
   * Due within `{ min, max }` from now (inclusive), on this process's clock, as
   * `enqueue`'s `delay` is measured: a job enqueued a moment ago with `delay: "10m"`
   * matches `{ min: "9m", max: "10m" }`.
   */
  delay?: { min?: Duration; max?: Duration };
  /** Exactly this many matching jobs (0: none). Default: at least one. */
  count?: number;
}

/** A payload matcher: a deep partial pattern (see `PayloadPattern`), or a predicate. */
export type PayloadMatcher<T = unknown> = PayloadPattern<T> | ((payload: T, job: EnqueuedJob) => boolean);

/**
 * Asserts that jobs of `task` were enqueued: reads `punctual.jobs` through `db` (a pg
 * Pool or Client, or a drizzle database or transaction: pass the test's transaction
 * to see its uncommitted jobs) and throws an `AssertionError` unless at least one
 * pending job of the task (or exactly `options.count`) matches `payload` and the
 * options. The payload is matched as stored (JSON): a pattern object matches when its
 * keys match, deeply (see `PayloadPattern`); a function decides for itself. The
 * message of a failure lists what was enqueued for the task instead, each job with
 * its payload and the first difference, so a failing test explains itself. Works in
 * any test runner (vitest, jest, node:test): it imports none. Returns the matching jobs.
 *
 * @example
 * await signUp(pool, { email: "ada@example.com" });
 * await expectEnqueued(pool, sendEmail, { to: "ada@example.com" }, { key: "welcome:ada", delay: { max: "10m" } });
 * await expectEnqueued(pool, sendEmail, (p) => p.to.endsWith("@example.com"), { count: 1 });
 * await expectEnqueued(pool, sendEmail, undefined, { count: 0 }); // nothing enqueued
 */
export async function expectEnqueued<S extends PayloadSchema>(
  db: Executor,
  task: Task<S> | string,
  payload?: PayloadMatcher<PayloadInput<S>>,
  options: ExpectEnqueuedOptions = {},
): Promise<EnqueuedJob[]> {
  const name = taskName(task, "task");
  const states = toStates(options.state);
  const conditions = describeConditions(payload, options);
  const count = options.count;
  if (count !== undefined && !(Number.isInteger(count) && count >= 0)) {
    throw new ValidationError("count", "must be a whole number, 0 or more");
  }
  const check = jobCheck(payload as PayloadMatcher | undefined, options);
  const queryable = toQueryable(db);
  const candidates = await testJobsList(queryable, { task: name, queue: null, key: null, states });
  const judged = candidates.map((job) => ({ job, why: check(job) }));
  const matching = judged.filter((j) => j.why === undefined).map((j) => j.job);
  if (count === undefined ? matching.length > 0 : matching.length === count) return matching;

  const stateText = states === null ? "" : `${states.join(" or ")} `;
  const wanted =
    count === undefined ? `a ${stateText}job` : count === 0 ? `no ${stateText}job` : `exactly ${count} ${stateText}job(s)`;
  const lines = [`expected ${wanted} of task "${name}"${conditions.length ? " with" : ""}`];
  for (const condition of conditions) lines.push(`  ${condition}`);
  lines.push(count === undefined || count > 0 ? `but ${matching.length === 0 ? "found none" : `found ${matching.length}`}.` : `but found ${matching.length}:`);
  if (candidates.length === 0) {
    const others = await testJobsCountByTask(queryable, states);
    lines.push(
      others.length === 0
        ? `There are no ${stateText}jobs at all.`
        : `There are no ${stateText}jobs of task "${name}"; ${stateText}jobs by task: ${others.map((o) => `"${o.task}" (${o.count})`).join(", ")}.`,
    );
  } else {
    const listed = count === 0 ? judged.filter((j) => j.why === undefined) : judged;
    if (count !== 0) lines.push(`${capitalise(stateText)}jobs of task "${name}" (${candidates.length}):`);
    for (const { job, why } of listed.slice(0, LIST_MAX)) lines.push(...describeJob(job, why));
    if (listed.length > LIST_MAX) lines.push(`  ... and ${listed.length - LIST_MAX} more`);
  }
  throw new AssertionError({ message: lines.join("\n"), stackStartFn: expectEnqueued });
}

/** Jobs listed in a failure message, at most. */
const LIST_MAX = 20;

function capitalise(text: string): string {
  return text ? text[0]!.toUpperCase() + text.slice(1) : "Jobs ";
}

/** A job as a failure message shows it: identity, due time, payload, and why it did not match. */
function describeJob(job: EnqueuedJob, why: string | undefined): string[] {
  const inMs = job.runAt.getTime() - Date.now();
  const when = Math.abs(inMs) < 1000 ? "now" : inMs > 0 ? `in ${humanMs(inMs)}` : `${humanMs(-inMs)} ago`;
  const head = [
    `  #${job.id}`,
    job.state,
    job.key === null ? "no key" : `key ${JSON.stringify(job.key)}`,
    `queue ${JSON.stringify(job.queue)}`,
    `priority ${job.priority}`,
    `run_at ${job.runAt.toISOString()} (${when})`,
    job.cron ? `cron ${JSON.stringify(job.cron)} ${job.tz}` : job.everyMs ? `every ${humanMs(job.everyMs)}` : "",
  ]
    .filter(Boolean)
    .join("  ");
  return [head, `    payload: ${pretty(job.payload, "    ")}`, ...(why ? [`    differs: ${why}`] : [])];
}

function humanMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const units: [number, string][] = [
    [86_400_000, "d"],
    [3_600_000, "h"],
    [60_000, "m"],
    [1000, "s"],
  ];
  for (const [size, unit] of units) {
    if (ms >= size) return `${Number((ms / size).toFixed(1))}${unit}`;
  }
  return `${ms}ms`;
}

/** The conditions of an assertion, one per line, for its failure message. */
function describeConditions(payload: unknown, options: ExpectEnqueuedOptions): string[] {
  const out: string[] = [];
  if (typeof payload === "function") out.push(`payload accepted by ${payload.name ? `${payload.name}()` : "the predicate"}`);
  else if (payload !== undefined) out.push(`payload matching ${pretty(payload, "  ")}`);
  if (options.key !== undefined) out.push(`key ${JSON.stringify(options.key)}`);
  if (options.queue !== undefined) out.push(`queue ${JSON.stringify(options.queue)}`);
  if (options.priority !== undefined) out.push(`priority ${options.priority}`);
  if (options.runAt !== undefined) out.push(`run_at ${describeRange(options.runAt)}`);
  if (options.delay !== undefined) {
    const { min, max } = options.delay;
    out.push(`due ${[min !== undefined && `at least ${min}`, max !== undefined && `at most ${max}`].filter(Boolean).join(" and ")} from now`);
  }
  return out;
}

function describeRange(range: NonNullable<ExpectEnqueuedOptions["runAt"]>): string {
  if (range instanceof Date || typeof range === "string") return new Date(range).toISOString();
  return [range.min !== undefined && `>= ${new Date(range.min).toISOString()}`, range.max !== undefined && `<= ${new Date(range.max).toISOString()}`]
    .filter(Boolean)
    .join(" and ");
}

/** The check of one job against the assertion: why it does not match, or undefined. */
function jobCheck(payload: PayloadMatcher | undefined, options: ExpectEnqueuedOptions): (job: EnqueuedJob) => string | undefined {
  const runAt = toRange(options.runAt);
  const delay = options.delay === undefined ? undefined : toDelay(options.delay);
  const now = Date.now();
  return (job) => {
    if (options.key !== undefined && job.key !== options.key) return `key: expected ${JSON.stringify(options.key)}, got ${JSON.stringify(job.key)}`;
    if (options.queue !== undefined && job.queue !== options.queue) return `queue: expected ${JSON.stringify(options.queue)}, got ${JSON.stringify(job.queue)}`;
    if (options.priority !== undefined && job.priority !== options.priority) return `priority: expected ${options.priority}, got ${job.priority}`;
    const at = job.runAt.getTime();
    if (runAt && !(at >= runAt.min && at <= runAt.max)) return `run_at: expected ${describeRange(options.runAt!)}, got ${job.runAt.toISOString()}`;
    if (delay && !(at - now >= delay.min && at - now <= delay.max)) {
      return `delay: expected ${describeConditions(undefined, { delay: options.delay }).join("")}, got due in ${humanMs(at - now)}`;
    }
    if (typeof payload === "function") {
      let accepted: boolean;
      try {
        accepted = Boolean(payload(job.payload, job));
      } catch (error) {
        return `payload: the predicate threw ${error instanceof Error ? error.message : String(error)}`;
      }
      return accepted ? undefined : "payload: the predicate returned false";
    }
    return payload === undefined ? undefined : mismatch(payload, job.payload, "payload");
  };
}

function toRange(range: ExpectEnqueuedOptions["runAt"]): { min: number; max: number } | undefined {
  if (range === undefined) return undefined;
  const ms = (value: Date | string | undefined, field: string, otherwise: number) => {
    if (value === undefined) return otherwise;
    const time = new Date(value).getTime();
    if (Number.isNaN(time)) throw new ValidationError(field, "must be a valid Date or ISO 8601 string");
    return time;
  };
  if (range instanceof Date || typeof range === "string") {
    const at = ms(range, "runAt", 0);
    return { min: at, max: at };
  }
  return { min: ms(range.min, "runAt.min", -Infinity), max: ms(range.max, "runAt.max", Infinity) };
}

function toDelay(delay: { min?: Duration; max?: Duration }): { min: number; max: number } {
  const ms = (value: Duration | undefined, field: string, otherwise: number) => {
    if (value === undefined) return otherwise;
    const parsed = durationSchema.safeParse(value);
    if (!parsed.success) throw zodError(field, parsed.error);
    return parsed.data;
  };
  return { min: ms(delay.min, "delay.min", -Infinity), max: ms(delay.max, "delay.max", Infinity) };
}

function taskName(task: AnyTask | string, field: string): string {
  if (typeof task === "string") return task;
  if (!isTask(task)) throw new ValidationError(field, "must be a task made by defineTask, or a task name");
  return task.name;
}

const STATES = new Set<string>(jobState.enumValues);

function toStates(state: StateFilter | undefined): JobState[] | null {
  if (state === undefined) return ["pending"];
  if (state === "any") return null;
  const list = typeof state === "string" ? [state] : [...state];
  for (const s of list) {
    if (!STATES.has(s)) throw new ValidationError("state", `unknown state ${JSON.stringify(s)}; states: ${[...STATES].join(", ")}, or "any"`);
  }
  return list;
}
