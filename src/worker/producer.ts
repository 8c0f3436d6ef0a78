import type { Queryable } from "../executor.js";
import type { Logger } from "../logger.js";
import { jobClaim, jobCompleteAndClaim, jobNextRunAt, jobUnclaimMany, type ClaimedRow, type ClaimParams } from "../sql/jobs.js";
import { LazyAbort, type Running } from "./job-runner.js";
import type { LeaseKeeper } from "./lease-keeper.js";
import type { OutcomeBatcher } from "./outcome-batcher.js";
import type { WakeReason, Wakeups } from "./wakeups.js";

export interface ProducerOptions {
  workerId: string;
  queues: readonly string[];
  tasks: readonly string[];
  /** Handlers running at once. */
  concurrency: number;
  /** Claimed jobs that may wait for a slot, beyond `concurrency`. 0: claim only for free slots. */
  prefetch: number;
  leaseMs: number;
  pollIntervalMs: number;
  /** A buffered job that has not started within this long goes back to pending. */
  holdMs: number;
  /**
   * Jobs due within this long are claimed too, and wait in the buffer until their
   * run_at: a claim's round trip (and a burst's processing) then falls before the due
   * time instead of after it. 0: only jobs due now.
   */
  leadMs: number;
}

export interface ProducerHooks {
  /**
   * Runs a claimed job's handler; calls `handlerDone` as soon as the handler returned,
   * and resolves once the outcome is written (or given up).
   */
  launch(row: ClaimedRow, entry: Running, handlerDone: () => void): Promise<void>;
  poll(info: { claimed: number; free: number; reason: WakeReason }): void;
  /** A buffered job's lease was taken over (this worker was presumed dead): it will not start here. */
  lostBuffered(entry: Running): void;
  error(error: unknown): void;
}

/** A claimed job waiting for a slot. */
interface Buffered {
  row: ClaimedRow;
  entry: Running;
  /** `performance.now()` at its claim. */
  claimedAt: number;
  /** `performance.now()` at its run_at (by the database's clock): it does not start before. */
  notBefore: number;
}

/** After an idle claim found a due job it could not take (another worker holds it). */
const BUSY_RETRY_MS = 25;

/**
 * A job starts only while at least this share of its lease is known to remain (see
 * `Running.leaseUntil`). A claim answered that late (its reply held up in the network,
 * while another worker may already have rescued the job) or a buffered job whose
 * renewals have not reached the database does not start here. Healthy, neither
 * happens: a buffered job waits at most holdMs (≤ half the lease) before it goes back.
 */
const START_LEASE_SHARE = 1 / 4;

/** A job started from the buffer has its `started_at` written within about this long. */
const START_MARK_MS = 250;

/**
 * The few claim limits the worker uses: each limit is a prepared statement of its own
 * (its plan knows the limit), so adaptive sizes are rounded down to one of these.
 * 1 to 10, then steps of about a quarter.
 */
const CLAIM_LIMITS = (() => {
  const sizes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  while (sizes.at(-1)! < 20_000) sizes.push(Math.round(sizes.at(-1)! * 1.25));
  return sizes;
})();

/** The largest claim limit not above `want` (0 for 0). */
function claimLimit(want: number): number {
  let chosen = 0;
  for (const size of CLAIM_LIMITS) {
    if (size > want) break;
    chosen = size;
  }
  return chosen;
}

/**
 * Claims due jobs and feeds them to the worker's slots: the claim loop, the local
 * buffer of claimed jobs waiting for a slot, and the count of slots.
 *
 * Claim-ahead, on the terms of DESIGN.md ("Performance shape"):
 * - **Bounded.** At most `concurrency + prefetch` jobs are held: running, buffered,
 *   or finished with their outcome not yet written (rows still `running` in the table).
 *   Within that, the buffer aims at what the slots will start within half the hold
 *   bound at the rate they have been starting jobs: a busy worker of short jobs claims
 *   about a thousand per round trip; a worker whose handlers are slow (or blocked) claims
 *   little or nothing ahead, so it never sits on work another worker could run.
 * - **Pipelined.** The next claim is sent while the buffer still has jobs, when it
 *   falls to half its aim (also when handlers return at once and the buffer drains in
 *   one go: `fillSlots` lets the claim go out before starting the rest); one claim is
 *   in flight at a time. It carries the successes
 *   waiting to be written when it is sent; successes that come while it is in flight
 *   do not wait for the one after: the outcome batcher writes them on another
 *   connection meanwhile. Under load the claim is what a worker waits for, and the two
 *   statements then run side by side (in `npm run bench`'s one-process case, about a
 *   third more jobs per second than with every success waiting to ride along with a
 *   claim).
 * - **Leased, not hoarded.** Buffered jobs are leased and renewed like running ones.
 *   One that has not started within `holdMs` goes back to pending with its attempt
 *   given back, and so does the whole buffer on `stop`.
 * - **Visible.** The claim marks `started_at` on the jobs that take a free slot at once;
 *   a buffered job's row has `started_at` null until it starts, and then gets it with
 *   its next lease renewal or its outcome, whichever is written first.
 * - **In order, never early.** The buffer is kept in claim order (priority, run_at,
 *   id). A claim also takes jobs due within `leadMs`: they wait in the buffer and
 *   start on their run_at, so the claim's round trip falls before the due time.
 */
export class Producer {
  /** Jobs whose handler runs now: what the concurrency counts. */
  readonly running = new Map<number, Running>();
  /** Claimed jobs waiting for a slot, most urgent first. */
  private buffer: Buffered[] = [];
  /** Buffered jobs on their way back to pending (a hand-back that must be written again). */
  private readonly returning = new Map<Running, Buffered>();
  private loop: Promise<void> | null = null;
  private stopping = false;
  /** When a claim statement last answered (`Date.now()`); null before the first. */
  private lastClaimedAt: number | null = null;
  /** Wakes the claim loop from its wait; set only while it waits. */
  private wake: ((reason: WakeReason) => void) | null = null;
  /** The loop waits for room (a freed slot, a buffer below its aim), not for new jobs. */
  private waitingForRoom = false;
  /** A wake-up that came while the loop was busy. */
  private pendingWake: WakeReason | null = null;
  /** `fill` is running. */
  private filling = false;
  /** `fill` on the next turn of the event loop (after what the current one sends), once for any number of calls. */
  private readonly fillSoon = coalesced(setImmediate, () => this.fill());
  /** `wakeIfRoom` in a microtask: one for however many slots free before it runs. */
  private readonly wakeIfRoomSoon = coalesced(queueMicrotask, () => this.wakeIfRoom());
  /** A claim statement is in flight. */
  private claiming = false;
  private holdTimer: NodeJS.Timeout | undefined;
  /** Starts the buffered jobs claimed early at their run_at; armed for the earliest. */
  private dueTimer: NodeJS.Timeout | undefined;
  private dueTimerAt = Number.POSITIVE_INFINITY;
  private handingBack: Promise<void> | null = null;
  /**
   * Handler starts per millisecond of busy time, smoothed: what the slots can start,
   * and what the buffer aims at. Idle time does not count, so a worker that runs a
   * burst every second (every-second schedules) claims the next burst whole.
   */
  private startRate = 0;
  private startsSince = 0;
  /** Busy time in the current measure, before `busySince`. */
  private busyMs = 0;
  /** Since when the worker is busy (a handler runs); null while idle. */
  private busySince: number | null = null;
  /** When a handler last started (`performance.now()`). */
  private lastStartAt = 0;

  constructor(
    private readonly db: Queryable,
    private readonly options: ProducerOptions,
    private readonly outcomes: OutcomeBatcher,
    private readonly leases: LeaseKeeper,
    private readonly wakeups: Wakeups,
    private readonly logger: Logger,
    private readonly hooks: ProducerHooks,
  ) {
    // Wake-ups come `leadMs` before a due time, for the claim that takes it early.
    wakeups.leadMs = options.leadMs;
  }

  /** Claimed jobs waiting in the buffer for a slot. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** When a claim statement last answered (`Date.now()`), null before the first: readiness probes read it. */
  get lastClaimAt(): number | null {
    return this.lastClaimedAt;
  }

  start(): void {
    if (this.loop) return;
    this.holdTimer = setInterval(() => void this.handBack(false), Math.max(5, Math.floor(this.options.holdMs / 4)));
    this.holdTimer.unref();
    this.loop = this.claimLoop();
  }

  /**
   * Stops claiming and hands the whole buffer back to pending at once (attempts given
   * back). Running handlers are the worker's to wait for.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.holdTimer);
    clearTimeout(this.dueTimer);
    this.wake?.("poll");
    await this.loop;
    await this.handingBack;
    await this.handBack(true);
  }

  /** Whether `entry` is this worker's current entry for its job, buffered or running. */
  holds(entry: Running): boolean {
    return this.running.get(entry.job.id) === entry || this.buffer.some((b) => b.entry === entry) || this.returning.has(entry);
  }

  /**
   * A buffered job whose lease was taken over: it leaves the buffer without starting.
   * Returns false when `entry` is not buffered (it runs, or has left).
   */
  dropBuffered(entry: Running): boolean {
    const index = this.buffer.findIndex((b) => b.entry === entry);
    const inBuffer = index >= 0;
    if (inBuffer) this.buffer.splice(index, 1);
    const returning = this.returning.delete(entry);
    if (!inBuffer && !returning) return false;
    entry.released = true;
    this.leases.drop(entry);
    this.wakeIfRoom();
    return true;
  }

  /** A cancel of a buffered job: it is handed back now, and the row ends `cancelled`. */
  cancelBuffered(jobId: number): boolean {
    const item = this.buffer.find((b) => b.entry.job.id === jobId);
    if (!item) return false;
    if (!item.entry.abort.aborted) item.entry.abort.abort(new Error("cancelled"));
    void this.handBack(false);
    return true;
  }

  /**
   * NOTIFY, a timer or a reconnect: claim now, unless there is no room anyway. While
   * the loop is busy (a claim or look-ahead in flight), the wake-up is kept: the loop
   * claims again as soon as it is done, instead of waiting.
   */
  onWake(reason: WakeReason): void {
    if (!this.wake) {
      this.pendingWake ??= reason;
      return;
    }
    if (!this.waitingForRoom || this.claimSize() > 0) this.wake(reason);
  }

  private async claimLoop(): Promise<void> {
    let reason: WakeReason = "start";
    while (!this.stopping) {
      const want = this.claimSize();
      let claimed = 0;
      let failed = false;
      if (want > 0) {
        try {
          claimed = await this.claim(want, reason);
        } catch (error) {
          failed = true;
          this.hooks.error(error);
        }
      }
      if (this.stopping) break;
      if (want === 0 || (claimed === want && !failed)) {
        // No room, or the claim came back full and more may be due: claim again as
        // soon as there is room.
        reason = this.claimSize() > 0 ? "slot" : await this.wait(this.options.pollIntervalMs, true);
        continue;
      }
      // Fewer due jobs than asked for: nothing more is claimable now. Ask when the next
      // one is due, so a timer wakes us on the millisecond.
      // (Not when a wake-up came meanwhile: claim again first.)
      if (!failed && !this.pendingWake) await this.lookAhead(claimed === 0);
      reason = await this.wait(this.options.pollIntervalMs, false);
    }
  }

  /**
   * How many jobs to claim now: the free slots, plus what tops the buffer up to its aim
   * once it has fallen to half of it; never beyond `concurrency + prefetch` held.
   */
  private claimSize(): number {
    const { concurrency, prefetch } = this.options;
    // Held, as the table counts them once this claim commits: every job whose outcome
    // is not written yet, less the successes that ride along with this claim.
    const held = this.leases.size - this.outcomes.queuedSuccesses;
    const room = concurrency + prefetch - held;
    if (room <= 0) return 0;
    const free = Math.max(0, concurrency - this.running.size - this.buffer.length);
    const aim = this.bufferAim();
    if (free === 0 && this.buffer.length > aim / 2) return 0;
    return claimLimit(Math.min(room, free + Math.max(0, aim - this.buffer.length)));
  }

  /**
   * The buffer's aim: the jobs the slots will start within half the hold bound. None
   * while every slot is taken and none has freed for that long (handlers that block or
   * run long): a buffer would only wait there, and go back.
   */
  private bufferAim(): number {
    const now = performance.now();
    if (this.running.size >= this.options.concurrency && now - this.lastStartAt > this.options.holdMs / 2) return 0;
    // A fresh measure every 50 ms of busy time, and a first one as soon as a round of
    // slots has started.
    const busy = this.busyMs + (this.busySince === null ? 0 : now - this.busySince);
    if (busy >= 50 || (this.startRate === 0 && this.startsSince >= this.options.concurrency && busy >= 1)) {
      this.measure(busy, now);
    }
    return Math.min(this.options.prefetch, Math.floor((this.startRate * this.options.holdMs) / 2));
  }

  /** Folds the starts of the last `elapsed` busy milliseconds into the rate, and starts a new measure. */
  private measure(elapsed: number, now: number) {
    if (elapsed >= 1) {
      // Smoothed over about 100 ms of busy time: a long measure (slots blocked for
      // seconds) all but replaces what came before.
      const instant = this.startsSince / elapsed;
      const weight = this.startRate === 0 ? 1 : 1 - Math.exp(-elapsed / 100);
      this.startRate += (instant - this.startRate) * weight;
    }
    this.startsSince = 0;
    this.busyMs = 0;
    if (this.busySince !== null) this.busySince = now;
  }

  /** Whether too little of `entry`'s lease is known to remain for its handler to start. */
  private stale(entry: Running): boolean {
    return entry.leaseUntil - performance.now() < this.options.leaseMs * START_LEASE_SHARE;
  }

  private async claim(limit: number, reason: WakeReason): Promise<number> {
    const params = {
      workerId: this.options.workerId,
      queues: this.options.queues,
      tasks: this.options.tasks,
      limit,
      leaseMs: this.options.leaseMs,
      // The buffer is empty whenever a slot is free: these start at once (if due).
      startNow: Math.max(0, this.options.concurrency - this.running.size - this.buffer.length),
      leadMs: this.options.leadMs,
    };
    // Successes not yet sent by the batcher ride along with the claim: one round trip
    // (a light load's success rides along with the claim its freed slot makes).
    const taken = this.outcomes.takeSuccesses();
    const sentAt = performance.now();
    let rows: ClaimedRow[];
    this.claiming = true;
    try {
      rows = await this.claimRows(params, taken);
    } finally {
      this.claiming = false;
    }
    const claimedAt = performance.now();
    const waiting: Buffered[] = [];
    const late: Running[] = [];
    for (const row of rows) {
      const entry: Running = {
        job: {
          id: Number(row.id),
          task: row.task,
          queue: row.queue,
          key: row.key,
          attempt: row.attempts,
          maxAttempts: row.max_attempts,
        },
        abort: new LazyAbort(),
        released: false,
        done: Promise.resolve(),
        startedAt: null,
        startRecorded: row.started,
        leaseUntil: sentAt + this.options.leaseMs,
      };
      this.leases.hold(entry);
      // A job claimed early starts once its run_at comes, counted from the database's
      // clock as it answered (that reading is older than the answer: this errs late).
      if (!row.started) waiting.push({ row, entry, claimedAt, notBefore: claimedAt + row.due_in_ms });
      else if (!this.stale(entry)) this.launch(row, entry);
      else late.push(entry);
    }
    if (late.length > 0) {
      // The claim marked them started, so they cannot be handed back with their attempt
      // given back: their lease runs out unrenewed and the rescuer takes them back.
      for (const entry of late) {
        entry.released = true;
        this.leases.drop(entry);
      }
      this.logger.warn(
        { jobs: late.map((e) => e.job.id), answeredAfterMs: Math.round(claimedAt - sentAt) },
        "a claim was answered too close to its lease's end; its jobs do not start here and are left to the lease rescuer",
      );
    }
    if (waiting.length > 0) {
      // A claim's rows come in claim order: only a buffer that still held jobs needs sorting.
      const merge = this.buffer.length > 0;
      this.buffer.push(...waiting);
      if (merge) this.buffer.sort(byClaimOrder);
      this.fill();
    }
    this.lastClaimedAt = Date.now();
    this.hooks.poll({ claimed: rows.length, free: limit, reason });
    return rows.length;
  }

  /** The claim statement; it records the `taken` successes too, when there are some. */
  private async claimRows(params: ClaimParams, taken: ReturnType<OutcomeBatcher["takeSuccesses"]>): Promise<ClaimedRow[]> {
    if (!taken) return jobClaim(this.db, params);
    try {
      const result = await jobCompleteAndClaim(this.db, params, taken.successes, this.outcomes.deleteSucceeded);
      taken.settle(result.completed);
      return result.claimed;
    } catch (error) {
      taken.giveBack();
      throw error;
    }
  }

  /**
   * Starts buffered jobs while slots are free, most urgent first. One whose lease is not
   * known to hold long enough (renewals failing) goes back to pending instead.
   */
  private fill() {
    // A handler that returns at once frees its slot inside `launch`, and that calls
    // fill again: the loop below, still running, takes the slot (a recursion per
    // buffered job would run out of stack).
    if (this.filling) return;
    this.filling = true;
    try {
      this.fillSlots();
    } finally {
      this.filling = false;
    }
  }

  private fillSlots() {
    let started = false;
    let stale = false;
    const now = performance.now();
    let earliest = Number.POSITIVE_INFINITY;
    // Handlers that return at once drain the whole buffer in this one loop, and the
    // claim loop would send the next claim only after it (claim, run, claim: the
    // database and the handlers would take turns). So once the buffer falls to half its
    // aim, while no claim is in flight, the rest waits for the next turn of the event
    // loop (setImmediate): the claim goes out first, and runs beside them.
    const half = this.claiming || this.stopping ? -1 : Math.floor(this.bufferAim() / 2);
    const yieldAt = this.buffer.length > half ? half : -1;
    for (let i = 0; i < this.buffer.length && this.running.size < this.options.concurrency; ) {
      if (this.buffer.length <= yieldAt) {
        // Whether the claim loop finds room is its own reckoning, once the outcomes this
        // claim wrote have released their leases (they do in microtasks to come).
        this.fillSoon();
        this.wakeIfRoom();
        break;
      }
      const item = this.buffer[i]!;
      if (item.notBefore > now) {
        // Claimed early: it waits for its run_at; later ones in claim order may be due.
        earliest = Math.min(earliest, item.notBefore);
        i++;
        continue;
      }
      // Mostly the first: shift() leaves the rest in place, splice would move them.
      if (i === 0) this.buffer.shift();
      else this.buffer.splice(i, 1);
      if (this.stale(item.entry)) {
        this.returning.set(item.entry, item);
        stale = true;
        continue;
      }
      this.launch(item.row, item.entry);
      started = true;
    }
    if (earliest !== Number.POSITIVE_INFINITY) this.fillAt(earliest);
    if (stale) {
      this.logger.warn("buffered jobs whose lease renewals did not reach the database go back to pending instead of starting");
      void this.handBack(false);
    }
    // Their rows say started once an outcome or a renewal carries it: a short handler's
    // outcome does; for a long one, the lease keeper renews early.
    if (started) this.leases.soon(START_MARK_MS);
  }

  /** Runs `fill` at `at` (`performance.now()`), unless it is armed for earlier already. */
  private fillAt(at: number) {
    if (this.stopping || at >= this.dueTimerAt) return;
    clearTimeout(this.dueTimer);
    this.dueTimerAt = at;
    this.dueTimer = setTimeout(() => {
      this.dueTimerAt = Number.POSITIVE_INFINITY;
      this.fill();
    }, Math.max(0, Math.ceil(at - performance.now())));
  }

  private launch(row: ClaimedRow, entry: Running) {
    const id = entry.job.id;
    entry.startedAt = performance.now();
    this.lastStartAt = entry.startedAt;
    this.busySince ??= entry.startedAt;
    this.startsSince++;
    this.running.set(id, entry);
    // The slot frees when the handler returns; the outcome is written in a batch after.
    // An earlier attempt of this job may still be running here: its lease expired (the
    // heartbeat could not reach the database), the job was rescued, and this worker
    // claimed it again. That attempt's outcome is fenced out by its attempt number;
    // only its own entry may be removed when it returns.
    const freeSlot = () => {
      if (this.running.get(id) !== entry) return;
      this.running.delete(id);
      this.fill();
      if (this.running.size === 0 && this.busySince !== null) {
        // Idle now: the time until the next job does not count.
        this.busyMs += performance.now() - this.busySince;
        this.busySince = null;
      }
      // Once the runner has queued the outcome (in this same tick), the next claim can
      // carry it: look for room then.
      this.wakeIfRoomSoon();
    };
    const settled = () => {
      freeSlot();
      // The outcome is written (or given up): the lease needs no renewing any more,
      // and the job no longer counts as held.
      this.leases.drop(entry);
      this.wakeIfRoom();
    };
    entry.done = this.hooks.launch(row, entry, freeSlot).then(settled, (error) => {
      this.hooks.error(error);
      settled();
    });
  }

  /** Ends a wait for room when there is room now. */
  private wakeIfRoom() {
    if (this.waitingForRoom && this.claimSize() > 0) this.wake?.("slot");
  }


  /**
   * Hands buffered jobs back to pending: those that waited longer than the hold bound
   * or whose cancel was requested, or (`all`, on stop) every one. Their attempt is given
   * back. A hand-back that fails is not tried again: those jobs are left to the lease
   * rescuer (see the catch below).
   */
  private handBack(all: boolean): Promise<void> {
    if (this.handingBack) return this.handingBack;
    const now = performance.now();
    const leaving = this.buffer.filter(
      (b) => all || now - Math.max(b.claimedAt, b.notBefore) > this.options.holdMs || b.entry.abort.aborted || this.stale(b.entry),
    );
    if (leaving.length === 0 && this.returning.size === 0) return Promise.resolve();
    this.buffer = this.buffer.filter((b) => !leaving.includes(b));
    for (const b of leaving) this.returning.set(b.entry, b);
    const batch = [...this.returning.values()];
    this.handingBack = (async () => {
      try {
        const back = new Set(
          await jobUnclaimMany(
            this.db,
            this.options.workerId,
            batch.map((b) => ({ id: b.entry.job.id, attempt: b.entry.job.attempt })),
          ),
        );
        for (const b of batch) {
          this.returning.delete(b.entry);
          b.entry.released = true;
          this.leases.drop(b.entry);
          if (back.has(b.entry.job.id) === false) this.hooks.lostBuffered(b.entry);
        }
        if (batch.length > 0) {
          this.logger.debug({ jobs: batch.length, all }, "handed buffered jobs back to pending");
        }
        // Room again: the claim loop may claim (the most urgent jobs, now).
        if (!all) this.wakeIfRoom();
      } catch (error) {
        // Never sent again: a hand-back whose answer did not come may have committed, or
        // may still (a statement stuck in a dead socket arrives when the network heals).
        // Sent again, one of the two could find the job claimed anew by this worker in
        // the same attempt (the first gave the attempt back) and hand back a job that
        // runs. Left alone, their leases run out and the rescuer takes them back (the
        // attempt counts, as for a worker that died).
        this.hooks.error(error);
        for (const b of batch) {
          this.returning.delete(b.entry);
          b.entry.released = true;
          this.leases.drop(b.entry);
        }
        this.logger.warn(
          { jobs: batch.map((b) => b.entry.job.id) },
          "could not hand buffered jobs back; they run again once their lease expires",
        );
      } finally {
        this.handingBack = null;
      }
    })();
    return this.handingBack;
  }

  private async lookAhead(claimedNone: boolean) {
    try {
      const { nextRunAt, upcoming, dbNow } = await jobNextRunAt(this.db, this.options.queues, this.options.tasks);
      if (!nextRunAt) return;
      // Claimable already (due, or due within the lead), yet not claimed: another worker
      // is taking it right now. Look again shortly rather than spinning. (The wake-ups
      // fire `leadMs` before a due time: `dueAt` takes due times.)
      const claimableUntil = new Date(dbNow.getTime() + this.options.leadMs);
      const claimable = nextRunAt <= claimableUntil;
      if (claimable && !claimedNone) this.wakeups.dueAt(claimableUntil, dbNow);
      else if (claimable) this.wakeups.dueAt(new Date(claimableUntil.getTime() + BUSY_RETRY_MS), dbNow);
      // A timer for each of the next due times: no look-ahead between jobs due close together.
      this.wakeups.dueAt(upcoming.filter((at) => at > claimableUntil), dbNow);
    } catch (error) {
      this.hooks.error(error);
    }
  }

  /**
   * Waits for a wake-up, `stop`, or `ms` at most. `forRoom`: the loop waits for room (a
   * freed slot, a buffer below its aim), and new jobs do not end the wait unless there
   * is room for them; else for new jobs.
   */
  private wait(ms: number, forRoom: boolean): Promise<WakeReason> {
    return new Promise((resolve) => {
      // `stop` may have come while the loop was busy, when there was no wait to end.
      if (this.stopping) return resolve("poll");
      const pending = this.pendingWake;
      this.pendingWake = null;
      // A wake-up came while the loop was busy: claim now (for room: only if there is room;
      // once there is, the loop claims anyway).
      if (pending && (!forRoom || this.claimSize() > 0)) return resolve(pending);
      const timer = setTimeout(() => done("poll"), ms);
      const done = (reason: WakeReason) => {
        clearTimeout(timer);
        this.wake = null;
        this.waitingForRoom = false;
        resolve(reason);
      };
      this.waitingForRoom = forRoom;
      this.wake = done;
    });
  }
}

/** `fn` run later by `schedule`; calls made before it runs share that one run. */
function coalesced(schedule: (run: () => void) => unknown, fn: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    schedule(() => {
      queued = false;
      fn();
    });
  };
}

function byClaimOrder(a: Buffered, b: Buffered): number {
  return (
    a.row.priority - b.row.priority ||
    a.row.run_at.getTime() - b.row.run_at.getTime() ||
    Number(a.row.id) - Number(b.row.id)
  );
}
