import type { RescueCounts } from "../maintenance/lease-rescuer.js";
import type { PruneCounts } from "../maintenance/pruner.js";
import type { WakeReason } from "./wakeups.js";

/** A job as events report it. */
export interface JobEvent {
  id: number;
  task: string;
  queue: string;
  key: string | null;
  attempt: number;
  maxAttempts: number;
}

/**
 * Events a worker emits; tests and apps await them instead of polling the table.
 * `durationMs` on an outcome is how long the job ran, from its start (`job:claimed`) to
 * its handler's return, before the outcome was written; absent on `job:failed` for a
 * job that never started (a cancel while it waited in the buffer, a bad rule).
 */
export interface WorkerEvents {
  /**
   * A job was claimed and its handler is starting. `runAt`: when it was due (the row's
   * `run_at`, on the database's clock), for its lateness.
   */
  "job:claimed": [JobEvent, { runAt: Date }];
  /** A job's success was recorded. */
  "job:succeeded": [JobEvent, { durationMs: number }];
  /** An attempt failed and the job is pending again, due at `runAt`. */
  "job:retried": [JobEvent, { error: Error; runAt: Date; durationMs: number }];
  /** A job ended `failed` (or `cancelled`, when a cancel was requested while it ran). */
  "job:failed": [JobEvent, { error: Error; state: "failed" | "cancelled"; durationMs?: number }];
  /** A periodic row written without a slot (by SQL, or after a rule change) was placed on its first slot. */
  "job:placed": [JobEvent, { slot: Date }];
  /** A missed periodic occurrence was not run (policy `skip`); the schedule moved to `next`. */
  "job:skipped": [JobEvent, { slot: Date; next: Date }];
  /** The outcome was not recorded: the job no longer runs under this worker's lease. */
  "job:lost": [JobEvent];
  /** This worker took back jobs whose lease had expired (their worker died). */
  "job:rescued": [RescueCounts["jobs"][number]];
  /** A claim finished: why it ran, how many jobs it took, how many slots were free. */
  "worker:poll": [{ claimed: number; free: number; reason: WakeReason }];
  /** The LISTEN connection is up (again, after a fault, when `reconnected`). */
  "worker:listening": [{ reconnected: boolean }];
  /**
   * The database stopped answering the worker's statements (a connection failed or a
   * statement passed its bound), or answers again after an outage of `outageMs`.
   */
  "worker:database": [{ reachable: boolean; outageMs?: number }];
  /** Finished jobs past retention were deleted. */
  "worker:pruned": [PruneCounts];
  /** A database or internal error; the worker carries on. */
  "worker:error": [Error];
  /** `stop` finished: nothing runs, every outcome is written. */
  "worker:stopped": [];
}
