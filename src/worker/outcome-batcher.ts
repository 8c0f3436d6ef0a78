import type { Queryable } from "../executor.js";
import { toJsonText } from "../json.js";
import type { JobState } from "../schema.js";
import { jobCompleteMany, jobFailMany, jobPlaceMany, type HeldJob, type JobFailure, type NextOccurrence, type StartedAgo } from "../sql/jobs.js";

/**
 * What became of a recorded outcome: the job's new state; `lost` when fenced out (the
 * job is no longer leased to this worker); `unrecorded` when it could not be written
 * (a statement error no retry can fix, or `stop` gave up on a database that stayed
 * away): the job then runs again once its lease expires.
 */
export type RecordedState = JobState | "lost" | "unrecorded";

/** Longest error message kept on a row (`last_error`), in characters. */
export const ERROR_MESSAGE_MAX = 8_192;
/** Longest stack kept on a row (`last_error_stack`), in characters. */
export const ERROR_STACK_MAX = 32_768;
/** Largest `result` kept on a row, in bytes of JSON text; a larger one is kept as a note (see `storableResult`). */
export const RESULT_MAX_BYTES = 8_192;
/** How much of an oversized result's JSON text its note keeps, in characters. */
const RESULT_PREVIEW_CHARS = 1_024;

type Resolve = (state: RecordedState) => void;
type Pending<T> = [T, Resolve];
export type Success = HeldJob & NextOccurrence & StartedAgo;
type Placement = HeldJob & { slot: Date };

/**
 * Collects job outcomes and writes them in batches: while one batch is being written,
 * the next accumulates, so under load one round trip records many jobs and when idle
 * an outcome is written at once.
 *
 * Robust to the two ways a write fails:
 * - the database is away (a connection-class error): the same outcomes are written
 *   again after a pause; none is dropped;
 * - a statement is refused for what it carries: each of its outcomes is then written
 *   on its own, so one bad outcome never holds back its neighbours, and one that fails
 *   alone is given up (`unrecorded`, reported) instead of retried forever.
 * The three statements of a batch (successes, failures, placements) settle apart.
 */
export class OutcomeBatcher {
  private successes: Pending<Success>[] = [];
  private failures: Pending<JobFailure>[] = [];
  private placements: Pending<Placement>[] = [];
  private flushing: Promise<void> | null = null;
  /** Outcomes whose statement has been sent and not answered yet. */
  private readonly inFlight = new Set<Pending<{ id: number }>>();
  private abandoned = false;
  private endPause: (() => void) | null = null;
  /**
   * Told, after each batch, the earliest `run_at` it wrote for a job to run again (a
   * periodic job's next occurrence, a retry, a placement on a slot) and, when the
   * statement said, the database's clock: the worker sets its timer for it, so those
   * jobs start on time without LISTEN (poll-only, behind PgBouncer) rather than at the
   * next poll. Later ones are found by the look-ahead after the claim this timer makes.
   * Successes that ride along with a claim need none: the look-ahead after that claim
   * sees their next occurrences.
   */
  onRunAgainAt: (runAt: Date, dbNow?: Date) => void = () => {};

  /**
   * `retention: 0`: successes of one-off jobs delete their row instead of marking it
   * succeeded (see `jobCompleteMany`). Every statement that records a success reads it.
   */
  deleteSucceeded = false;

  constructor(
    private readonly db: Queryable,
    readonly workerId: string,
    private readonly onError: (error: unknown) => void,
    private readonly retryDelayMs = 1000,
  ) {}

  /**
   * Records a success; resolves with `succeeded` once written. A `result` comes from a
   * handler: it is made storable first (see `storableResult`).
   */
  success(success: Success): Promise<RecordedState> {
    const stored = success.result === undefined ? success : { ...success, result: storableResult(success.result) };
    return new Promise((resolve) => this.push(this.successes, [stored, resolve]));
  }

  /**
   * Records a failed attempt; resolves with the state the job went to. The message,
   * stack and result come from a handler: they are made storable first (see
   * `storableText`, `storableResult`).
   */
  failure(failure: JobFailure): Promise<RecordedState> {
    const stored = {
      ...failure,
      message: storableText(failure.message, ERROR_MESSAGE_MAX),
      stack: failure.stack === null ? null : storableText(failure.stack, ERROR_STACK_MAX),
      ...(failure.result !== undefined && { result: storableResult(failure.result) }),
    };
    return new Promise((resolve) => this.push(this.failures, [stored, resolve]));
  }

  /** Puts a claimed periodic row back on a slot without running it. */
  place(placement: Placement): Promise<RecordedState> {
    return new Promise((resolve) => this.push(this.placements, [placement, resolve]));
  }

  /** How many successes wait for a batch (the next claim takes them all). */
  get queuedSuccesses(): number {
    return this.successes.length;
  }

  /**
   * Hands the successes waiting for a batch to the claim loop, which records them in
   * its claim statement (one round trip for both). It must call `settle` with the jobs
   * written (`all`: every one), or `giveBack` if the statement failed.
   */
  takeSuccesses(): { successes: Success[]; settle(written: readonly HeldJob[] | "all"): void; giveBack(): void } | null {
    if (this.successes.length === 0) return null;
    const taken = this.successes;
    this.successes = [];
    return {
      successes: taken.map(([s]) => s),
      settle: (written) => {
        if (written !== "all") return settleWritten(taken, written, "succeeded");
        for (const [, resolve] of taken) resolve("succeeded");
      },
      giveBack: () => {
        for (const item of taken) this.push(this.successes, item);
      },
    };
  }

  /**
   * Resolves true when everything recorded so far is written, or false when that took
   * longer than `timeoutMs` (the database is away): then call `abandon`.
   */
  async drain(timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      while (this.flushing) {
        if (!(await Promise.race([this.flushing.then(() => true), timedOut]))) return false;
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops retrying: every outcome not yet written resolves `unrecorded` (their jobs run
   * again after their lease expires). Returns their job ids. A statement already sent
   * may still land; its outcomes are reported unrecorded all the same.
   */
  abandon(): number[] {
    this.abandoned = true;
    this.endPause?.();
    const sent = [...this.inFlight];
    this.inFlight.clear();
    for (const [, resolve] of sent) resolve("unrecorded");
    return [...sent.map(([value]) => value.id), ...this.giveUpQueued()];
  }

  private push<T>(queue: Pending<T>[], item: Pending<T>) {
    if (this.abandoned) return item[1]("unrecorded");
    queue.push(item);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = null;
    });
  }

  private async flush() {
    // Yield once so that outcomes finishing in the same tick share the first batch.
    // A claim sent meanwhile takes the successes (`takeSuccesses`): they ride along with
    // it, and this flush may find nothing left to write.
    await new Promise((resolve) => setImmediate(resolve));
    while (!this.abandoned && this.successes.length + this.failures.length + this.placements.length > 0) {
      const successes = this.successes;
      const failures = this.failures;
      const placements = this.placements;
      this.successes = [];
      this.failures = [];
      this.placements = [];
      const retry = await Promise.all([
        this.write(successes, (items) => this.writeSuccesses(items), (items) => this.successes.unshift(...items)),
        this.write(failures, (items) => this.writeFailures(items), (items) => this.failures.unshift(...items)),
        // Not written again: a placement gives the attempt back, and one whose answer was
        // lost may have committed; sent again, it could find the job claimed anew by this
        // worker in the same attempt (its slot passed meanwhile) and put back a job that
        // runs. Unrecorded, the row waits out its lease and the rescuer takes it back.
        this.write(placements, (items) => this.writePlacements(items), null),
      ]);
      if (retry.some(Boolean)) await this.pause();
    }
    if (this.abandoned) this.giveUpQueued();
  }

  /**
   * Writes one statement's outcomes and resolves them. Returns true when they were put
   * back to be written again (the database is away); without `putBack`, they are not:
   * they resolve `unrecorded`.
   */
  private async write<T extends HeldJob>(
    items: Pending<T>[],
    statement: (values: T[]) => Promise<Map<string, RecordedState>>,
    putBack: ((items: Pending<T>[]) => void) | null,
  ): Promise<boolean> {
    if (items.length === 0) return false;
    for (const item of items) this.inFlight.add(item);
    try {
      const states = await statement(items.map(([value]) => value));
      for (const [value, resolve] of items) resolve(states.get(outcomeKey(value)) ?? "lost");
      return false;
    } catch (error) {
      if (this.abandoned) return false; // abandon() has resolved them
      if (isConnectionError(error)) {
        this.onError(error);
        if (!putBack) {
          for (const [, resolve] of items) resolve("unrecorded");
          return false;
        }
        putBack(items);
        return true;
      }
      if (items.length > 1) {
        // Refused for what it carries: find the bad outcome by writing each on its own.
        const retries = [];
        for (const item of items) retries.push(await this.write([item], statement, putBack));
        return retries.some(Boolean);
      }
      const [[value, resolve]] = items as [Pending<T>];
      this.onError(new Error(`the outcome of job ${value.id} could not be written, and is given up: ${(error as Error).message}`, { cause: error }));
      resolve("unrecorded");
      return false;
    } finally {
      for (const item of items) this.inFlight.delete(item);
    }
  }

  private async writeSuccesses(items: Success[]) {
    const written = await jobCompleteMany(this.db, this.workerId, items, this.deleteSucceeded);
    const [first] = written;
    if (first?.nextRunAt) this.tellRunAgainAt(first.nextRunAt, first.dbNow ?? undefined);
    return new Map(written.map((row) => [outcomeKey(row), "succeeded" as const]));
  }

  private async writeFailures(items: JobFailure[]) {
    const rows = await jobFailMany(this.db, this.workerId, items);
    const [first] = rows;
    if (first?.next_run_at) this.tellRunAgainAt(first.next_run_at, first.db_now);
    return new Map(rows.map((row) => [outcomeKey({ id: Number(row.id), attempt: row.attempts }), row.state]));
  }

  private async writePlacements(items: Placement[]) {
    const placed = new Set((await jobPlaceMany(this.db, this.workerId, items)).map(outcomeKey));
    // A placed row's run_at is its slot, which this worker computed.
    const slots = items.filter((p) => placed.has(outcomeKey(p))).map((p) => p.slot.getTime());
    if (slots.length > 0) this.tellRunAgainAt(new Date(slots.reduce((a, b) => Math.min(a, b))));
    return new Map([...placed].map((key) => [key, "pending" as const]));
  }

  /** The statement is written: a listener that throws must not make it look failed (and written again). */
  private tellRunAgainAt(runAt: Date, dbNow?: Date) {
    try {
      this.onRunAgainAt(runAt, dbNow);
    } catch (error) {
      this.onError(error);
    }
  }

  /** Waits before writing again; `abandon` cuts it short. */
  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.retryDelayMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.endPause = () => {
        this.endPause = null;
        done();
      };
    });
  }

  private giveUpQueued(): number[] {
    const queued: Pending<{ id: number }>[] = [...this.successes, ...this.failures, ...this.placements];
    this.successes = [];
    this.failures = [];
    this.placements = [];
    for (const [, resolve] of queued) resolve("unrecorded");
    return queued.map(([value]) => value.id);
  }
}

/** Resolves each outcome: written (`state`), or fenced out (`lost`). */
function settleWritten(items: readonly Pending<HeldJob>[], written: readonly HeldJob[], state: RecordedState) {
  const ok = new Set(written.map(outcomeKey));
  for (const [value, resolve] of items) resolve(ok.has(outcomeKey(value)) ? state : "lost");
}

/**
 * An outcome's job and attempt, as the statements' answers are matched to outcomes: a
 * batch may hold two outcomes of one job (a stale attempt's, whose lease was taken over
 * while the worker was cut off, and the same worker's next attempt), and only the
 * attempt that still holds the lease is recorded; the other must come back "lost".
 */
function outcomeKey(job: HeldJob): string {
  return `${job.id}:${job.attempt}`;
}

/**
 * Errors worth writing the same outcomes again for: the connection or the server is
 * unavailable (SQLSTATE classes 08 connection, 57P shutdown, 53 resources such as too
 * many connections), a transaction conflict (40), or an error with no SQLSTATE at all,
 * which is the socket's (terminated, timed out, refused). Anything else is the
 * statement's own fault and would fail again.
 */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return /^(08|57P|53|40)/.test(code);
  return true;
}

const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text PostgreSQL can store, from whatever a handler threw: NUL characters (which
 * `text` cannot hold) and unpaired UTF-16 surrogates (which are not UTF-8) become
 * U+FFFD, and text over `max` characters is cut, saying how much was cut.
 */
export function storableText(value: unknown, max: number): string {
  let text = String(value);
  if (text.length > max) text = `${text.slice(0, max)}… (${text.length - max} more characters)`;
  return text.replaceAll("\u0000", "\uFFFD").replace(UNPAIRED_SURROGATE, "\uFFFD");
}

/**
 * A handler's result as the `result` column can hold it: its JSON, when JSON can carry
 * it and it is at most `RESULT_MAX_BYTES`. Otherwise a note, never an error (the job
 * did what it did; its outcome must be written): `{ truncated: true, bytes, preview }`
 * with the start of an oversized value's JSON, or `{ unstorable: why }` for a value
 * JSON cannot carry (a BigInt, a cycle, a NUL character: see `toJsonText`). The value
 * is copied, so a handler that changes it after returning changes nothing stored.
 */
export function storableResult(value: unknown): unknown {
  let text: string;
  try {
    text = toJsonText(value, "result");
  } catch (error) {
    return { unstorable: storableText(error instanceof Error ? error.message : String(error), 512) };
  }
  // UTF-8 takes at most 3 bytes per UTF-16 code unit: only a longer text is measured.
  const bytes = text.length * 3 > RESULT_MAX_BYTES ? Buffer.byteLength(text) : text.length;
  if (bytes <= RESULT_MAX_BYTES) return JSON.parse(text);
  return { truncated: true, bytes, preview: storableText(text.slice(0, RESULT_PREVIEW_CHARS), RESULT_PREVIEW_CHARS) };
}
