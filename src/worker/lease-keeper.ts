import type { Queryable } from "../executor.js";
import { jobRenewLeases } from "../sql/jobs.js";
import type { Running } from "./job-runner.js";

/**
 * Keeps the leases of every job a worker holds: from its claim until its outcome is
 * written (not only while its handler runs), so an outcome written late, riding the
 * next claim or retried while the database is away, never finds its lease expired and
 * its job run again elsewhere. One statement renews them all, fenced on the lease
 * holder and the attempt.
 *
 * The next renewal is armed when the previous one has answered, so a slow database
 * never has renewals piling up on it.
 */
export class LeaseKeeper {
  private readonly held = new Map<number, Running>();
  private timer: NodeJS.Timeout | undefined;
  /** When the armed renewal fires (`performance.now()`); infinite while one is in flight. */
  private nextAt = Number.POSITIVE_INFINITY;
  /** A renewal asked for while one was in flight: the next one comes this soon. */
  private soonMs: number | null = null;
  /** When the last renewal was sent (`performance.now()`); the regular beat counts from it. */
  private lastSentAt = 0;
  private stopped = true;

  constructor(
    private readonly db: Queryable,
    private readonly workerId: string,
    private readonly leaseMs: number,
    private readonly intervalMs: number,
    private readonly events: {
      /** Whether this entry waits in the buffer or its handler still runs (its job is the worker's to judge). */
      isRunning(entry: Running): boolean;
      /** Whether this entry's handler still runs (it has not returned). */
      handlerRunning(entry: Running): boolean;
      /** A running or buffered job's lease was taken over by another worker. */
      lost(entry: Running): void;
      /** A cancel was requested for a running job. */
      cancelRequested(entry: Running): void;
      error(error: unknown): void;
    },
  ) {}

  /** How many jobs are held: claimed, and their outcome not written yet. */
  get size(): number {
    return this.held.size;
  }

  /** Starts keeping `entry`'s lease (at its claim). */
  hold(entry: Running): void {
    this.held.set(entry.job.id, entry);
  }

  /** Stops keeping it (its outcome is written or given up). A newer attempt's entry stays. */
  drop(entry: Running): void {
    if (this.held.get(entry.job.id) === entry) this.held.delete(entry.job.id);
  }

  start(): void {
    this.stopped = false;
    this.lastSentAt = performance.now();
    this.schedule();
  }

  /** Stops renewing. A renewal in flight still finishes. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * Renews every held lease once. A running job missing from the answer was taken over
   * (this worker was presumed dead). Only a job whose handler still runs is judged: one
   * whose handler has returned may have had its outcome written while the renewal was
   * in flight (its row is then no longer running, and the renewal missed it), and if it
   * was really lost, its outcome write says so (fenced: `job:lost`). A job whose
   * handler still runs had no outcome written (outcomes are written after the handler
   * returns), so a miss there means another worker took it.
   */
  async renewOnce(): Promise<void> {
    const held = [...this.held.values()].filter((r) => !r.released);
    if (held.length === 0) return;
    try {
      const now = performance.now();
      const sentAt = now;
      this.lastSentAt = sentAt;
      // Jobs started from the buffer since the last renewal: their start is written now.
      const starting = held.filter((r) => !r.startRecorded && r.startedAt !== null);
      const renewed = await jobRenewLeases(
        this.db,
        this.workerId,
        held.map((r) => ({
          id: r.job.id,
          attempt: r.job.attempt,
          startedAgoMs: !r.startRecorded && r.startedAt !== null ? Math.floor(now - r.startedAt) : null,
        })),
        this.leaseMs,
      );
      const still = new Map(renewed.map((r) => [r.id, r.cancelRequested]));
      for (const r of held) if (still.has(r.job.id)) r.leaseUntil = sentAt + this.leaseMs;
      for (const r of starting) if (still.has(r.job.id)) r.startRecorded = true;
      for (const r of held) {
        if (r.released || !this.events.isRunning(r)) continue;
        if (!still.has(r.job.id)) this.events.lost(r);
        else if (still.get(r.job.id)) this.events.cancelRequested(r);
      }
    } catch (error) {
      // The leases will be renewed at the next beat, unless the database stays away
      // longer than the lease: then another worker may take the jobs, and our late
      // outcomes are fenced out.
      this.events.error(error);
    }
  }

  /**
   * Renews within `ms` rather than at the next beat: a job started from the buffer gets
   * its `started_at` written soon even when its handler runs long and no outcome
   * carries it. Renewals still never overlap. When the time comes and every such job's
   * handler has returned (short jobs: their outcomes carry the start), nothing is sent:
   * a busy worker of short jobs would otherwise renew all it holds every `ms`.
   */
  soon(ms: number): void {
    if (this.stopped) return;
    if (this.nextAt === Number.POSITIVE_INFINITY) {
      this.soonMs = Math.min(this.soonMs ?? ms, ms);
      return;
    }
    if (performance.now() + ms < this.nextAt) this.arm(ms);
  }

  private schedule() {
    const ms = Math.min(this.soonMs ?? this.intervalMs, this.intervalMs);
    this.soonMs = null;
    this.arm(ms);
  }

  /** A held job started from the buffer whose row does not say so yet, and no outcome will soon. */
  private needsStartMark(): boolean {
    for (const r of this.held.values()) {
      if (!r.released && !r.startRecorded && r.startedAt !== null && this.events.handlerRunning(r)) return true;
    }
    return false;
  }

  private arm(ms: number) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.nextAt = performance.now() + ms;
    this.timer = setTimeout(() => {
      this.nextAt = Number.POSITIVE_INFINITY;
      // Early (before the beat) only for start marks: skipped when none is needed.
      const beatIn = this.lastSentAt + this.intervalMs - performance.now();
      if (beatIn > 0 && !this.needsStartMark()) return this.arm(beatIn);
      void this.renewOnce().finally(() => this.schedule());
    }, ms);
  }
}
