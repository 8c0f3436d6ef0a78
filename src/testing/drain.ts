import { randomUUID } from "node:crypto";
import type pg from "pg";
import { pino } from "pino";
import { PunctualError, ValidationError } from "../errors.js";
import { isPgPool, toQueryable, type Queryable } from "../executor.js";
import type { Logger } from "../logger.js";
import { TaskRegistry, type AnyTask } from "../tasks.js";
import type { BackoffOptions } from "../worker/backoff.js";
import type { JobEvent } from "../worker/events.js";
import { createWorker } from "../worker/worker.js";
import {
  testDrainDue,
  testDrainIdle,
  testDrainMakeDue,
  testDrainRestore,
  testDrainTranslate,
  testJobsById,
} from "./sql.js";

export interface DrainOptions {
  /** The database, as a pg Pool (the drain's worker runs on it; it is not ended). */
  pool: pg.Pool;
  /** The tasks to run. Jobs of other tasks are left as they are. */
  tasks: readonly AnyTask[];
  /**
   * Run what is due as of this instant (a Date or an ISO 8601 string), not yet due on
   * the database's clock: as if the clock had moved on to it with a worker running all
   * along. Not before the database's clock (a second of slack). See the README's
   * "Testing your app" for what it does to periodic jobs and its limits.
   */
  asOf?: Date | string;
  /**
   * Run a failed attempt's retry in the same drain at once, without waiting for its
   * backoff, until the job succeeds or runs out of attempts. Default true. With false,
   * a retry waits for its backoff like any job not yet due (with `asOf`, the backoff
   * counts from `asOf`), and stays pending for the test to look at.
   */
  retries?: boolean;
  /**
   * The most handler runs before the drain gives up with a `DrainLimitError` while
   * jobs are still due: what bounds a periodic schedule drained far ahead, or a job
   * that keeps enqueueing more. Checked between rounds, so one round of jobs that were
   * all due at once runs whole. Default 100.
   */
  maxRuns?: number;
  /** Queues to serve. Default: every queue with a due job of the tasks. */
  queues?: readonly string[];
  /** Handlers at once. Default 1: jobs run one after the other, in claim order (priority, run_at, id). */
  concurrency?: number;
  /** Retry delays, unless a task sets its own (matters with `retries: false`). */
  backoff?: BackoffOptions;
  /** The logger handlers get (`ctx.logger`). Default: silent. */
  logger?: Logger;
}

/** One handler run (or a job that failed without its handler running: a payload that fails its schema). */
export interface DrainRun {
  id: number;
  task: string;
  queue: string;
  key: string | null;
  /** 1 on the first run, 2 on the first retry, ... */
  attempt: number;
  /** The payload as stored. */
  payload: unknown;
  /** For a periodic job, the slot this occurrence stood for. */
  slot: Date | null;
  /** `retried`: it threw and attempts remain; `failed`: it threw on its last attempt (or cannot run). */
  outcome: "succeeded" | "retried" | "failed" | "cancelled";
  /** What the handler threw, for every outcome but `succeeded`. */
  error?: Error;
}

/** What `drain` did. */
export interface DrainResult {
  /** Every run, in the order the outcomes were recorded. */
  ran: DrainRun[];
  /** The runs that succeeded. */
  succeeded: DrainRun[];
  /** The runs that did not: retried, failed or cancelled. */
  failed: DrainRun[];
  /** Rounds of due jobs it took (a retry or a next occurrence that fell due makes one more). */
  rounds: number;
}

/** `drain` reached `maxRuns` with jobs still due. `result` says what ran until then. */
export class DrainLimitError extends PunctualError {
  override name = "DrainLimitError";
  constructor(
    readonly result: DrainResult,
    due: number,
  ) {
    super(
      `drain stopped after ${result.ran.length} runs (maxRuns) with ${due} job(s) still due: a periodic schedule ` +
        "drained far ahead, a retry loop, or a job that enqueues more? Raise maxRuns, or drain as of an earlier instant",
    );
  }
}

/** How far before the database's clock `asOf` may be and still mean "now" (clocks of two machines). */
const AS_OF_SLACK_MS = 1000;

/**
 * Runs every due job of `tasks` until none is left, with a real worker on `pool`:
 * claims, handlers, retries, next occurrences of periodic jobs and the rows they leave
 * are the worker's own. A retry runs at once (see `retries`), a next occurrence that is
 * due runs too, up to `maxRuns`; a job not yet due stays pending. Returns what ran and
 * what failed. A handler that throws does not make `drain` throw: look at `failed`.
 *
 * With `asOf`, jobs due by then run now: their `run_at` is moved onto the database's
 * clock for the claim (all by the same amount, so they keep their order) and put back
 * once they have run, so the table ends as a worker running at that time would leave
 * it. See the README ("Testing your app") for the semantics and limits.
 *
 * @example
 * await punctual.schedule("digest", sendDigest, {}, { cron: "0 8 * * *", tz: "Europe/Paris" });
 * const [slot] = upcomingSlots({ cron: "0 8 * * *", tz: "Europe/Paris" }, new Date(), 1);
 * const { succeeded } = await drain({ pool, tasks: [sendDigest], asOf: slot });
 */
export async function drain(options: DrainOptions): Promise<DrainResult> {
  if (typeof options !== "object" || options === null) throw new ValidationError("options", "drain takes { pool, tasks }");
  if (!isPgPool(options.pool)) throw new ValidationError("pool", "must be a pg Pool");
  const registry = new TaskRegistry(options.tasks);
  const names = registry.names();
  if (names.length === 0) throw new ValidationError("tasks", "give at least one task");
  const maxRuns = options.maxRuns ?? 100;
  if (!(Number.isInteger(maxRuns) && maxRuns >= 1)) throw new ValidationError("maxRuns", "must be a whole number, 1 or more");
  const retries = options.retries ?? true;
  if (typeof retries !== "boolean") throw new ValidationError("retries", "must be true or false");
  const queues = options.queues ?? null;
  if (queues !== null && !(Array.isArray(queues) && queues.length > 0)) throw new ValidationError("queues", "must be a non-empty array of queue names");
  const db = toQueryable(options.pool);
  const asOf = await resolveAsOf(db, options.asOf);

  const result: DrainResult = { ran: [], succeeded: [], failed: [], rounds: 0 };
  /** Jobs retried in this drain and still pending: with `retries`, they run in the next round. */
  const again = new Set<number>();
  for (;;) {
    const runAgain = retries ? [...again] : [];
    const due = await testDrainDue(db, names, queues, asOf, runAgain);
    if (due.count === 0) return result;
    if (result.ran.length >= maxRuns) throw new DrainLimitError(result, due.count);
    const moved = await testDrainMakeDue(db, names, queues, asOf, runAgain);
    let round: RoundOutcome;
    try {
      round = await runRound(options, queues ?? due.queues, db, names);
    } finally {
      // Due times moved for the claim go back, whatever happened in the round.
      await testDrainRestore(db, moved.rows);
    }
    result.rounds++;
    const rows = await testJobsById(db, round.events.map((e) => e.job.id));
    const retriedNow: number[] = [];
    for (const { job, outcome, error } of round.events) {
      const row = rows.get(job.id);
      const run: DrainRun = {
        id: job.id,
        task: job.task,
        queue: job.queue,
        key: job.key,
        attempt: job.attempt,
        payload: row?.payload,
        slot: row?.slotAt ?? null,
        outcome,
        ...(error ? { error } : {}),
      };
      result.ran.push(run);
      (outcome === "succeeded" ? result.succeeded : result.failed).push(run);
      if (outcome === "retried") {
        again.add(job.id);
        retriedNow.push(job.id);
      } else {
        again.delete(job.id);
      }
    }
    if (asOf) await testDrainTranslate(db, names, retriedNow, moved.maxId, asOf.getTime() - moved.dbNow.getTime());
    if (round.error) throw round.error;
    if (round.events.length === 0) {
      // Due, yet the worker claimed nothing: another worker took them (then they are no
      // longer due), or something holds them (a transaction that locked the rows).
      const still = await testDrainDue(db, names, queues, asOf, retries ? [...again] : []);
      if (still.count > 0) {
        throw new PunctualError(
          `drain: ${still.count} job(s) are due but its worker could not claim them (rows locked by an open transaction?)`,
        );
      }
    }
  }
}

/** `asOf` as an instant ahead of the database's clock; null for "now". */
async function resolveAsOf(db: Queryable, value: Date | string | undefined): Promise<Date | null> {
  if (value === undefined) return null;
  const asOf = new Date(value);
  if (!(value instanceof Date || typeof value === "string") || Number.isNaN(asOf.getTime())) {
    throw new ValidationError("asOf", "must be a valid Date or an ISO 8601 date-time");
  }
  const [row] = await db.query<{ now: Date }>("select now() as now");
  const dbNow = row!.now;
  if (asOf.getTime() > dbNow.getTime()) return asOf;
  if (dbNow.getTime() - asOf.getTime() <= AS_OF_SLACK_MS) return null;
  throw new ValidationError(
    "asOf",
    `${asOf.toISOString()} is before the database's clock (${dbNow.toISOString()}): drain brings jobs forward, it cannot ` +
      "hold back jobs that are already due. Leave asOf out to run what is due now",
  );
}

interface RoundEvent {
  job: JobEvent;
  outcome: DrainRun["outcome"];
  error?: Error;
}

interface RoundOutcome {
  events: RoundEvent[];
  error?: Error;
}

/**
 * One round: a worker on the pool claims and runs what is due, and is stopped once
 * nothing it could claim is due and nothing runs under it. The end is decided on the
 * worker's idle polls (every 10 ms): no handler in flight by its events, and the
 * table agrees.
 */
async function runRound(options: DrainOptions, queues: readonly string[], db: Queryable, names: readonly string[]): Promise<RoundOutcome> {
  const worker = createWorker({
    pool: options.pool,
    tasks: options.tasks,
    queues,
    concurrency: options.concurrency ?? 1,
    // Claim only for free slots, no LISTEN connection, no pruning of the rows a test reads.
    prefetch: 0,
    listen: false,
    pollIntervalMs: 10,
    retention: false,
    logger: options.logger ?? pino({ level: "silent" }),
    workerId: `punctual-drain:${process.pid}:${randomUUID().slice(0, 8)}`,
    ...(options.backoff ? { backoff: options.backoff } : {}),
  });
  const events: RoundEvent[] = [];
  const inFlight = new Set<number>();
  let checking = false;
  const finished = new Promise<Error | undefined>((resolve) => {
    const outcome = (job: JobEvent, value: DrainRun["outcome"], error?: Error) => {
      inFlight.delete(job.id);
      events.push({ job, outcome: value, ...(error ? { error } : {}) });
    };
    worker.on("job:claimed", (job) => inFlight.add(job.id));
    worker.on("job:succeeded", (job) => outcome(job, "succeeded"));
    worker.on("job:retried", (job, { error }) => outcome(job, "retried", error));
    worker.on("job:failed", (job, { error, state }) => outcome(job, state, error));
    worker.on("job:lost", (job) => inFlight.delete(job.id));
    worker.on("worker:error", (error) => resolve(error));
    worker.on("worker:poll", ({ claimed }) => {
      if (claimed > 0 || inFlight.size > 0 || checking) return;
      checking = true;
      testDrainIdle(db, names, queues, worker.id).then(
        (idle) => {
          checking = false;
          if (idle && inFlight.size === 0) resolve(undefined);
        },
        (error: Error) => resolve(error),
      );
    });
  });
  await worker.start();
  const error = await finished;
  await worker.stop();
  return { events, ...(error ? { error } : {}) };
}
