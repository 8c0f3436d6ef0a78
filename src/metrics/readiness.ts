import type { WorkerHealth } from "../worker/worker.js";

/** What `/readyz` answers. */
export interface Readiness {
  ready: boolean;
  /** Why not, one short phrase each; empty when ready. */
  reasons: string[];
}

/** The least time a worker may go without a claim before it counts as stuck (ms). */
export const CLAIM_STALE_FLOOR_MS = 15_000;

/** The default bound on the time since the last claim: max(3 × pollIntervalMs, 15 s). */
export function defaultClaimStaleMs(pollIntervalMs: number): number {
  return Math.max(3 * pollIntervalMs, CLAIM_STALE_FLOOR_MS);
}

/**
 * Whether a worker is ready, from its health and the time now (`Date.now()`): pure, so
 * the rules are tested without a clock. Ready when all hold:
 * - it is started and not stopping;
 * - its last statement reached the database;
 * - its LISTEN connection is up, unless it runs without one (`listen: false`);
 * - a claim statement has answered since it started (a worker started against an
 *   unreachable database is not ready), and the last one within `claimStaleMs`, unless
 *   every slot is taken (then it does not claim: it waits for a slot).
 */
export function readiness(health: WorkerHealth, now: number, claimStaleMs = defaultClaimStaleMs(health.pollIntervalMs)): Readiness {
  const reasons: string[] = [];
  if (!health.started) reasons.push("worker not started");
  if (health.stopping) reasons.push("worker stopping");
  if (!health.databaseReachable) reasons.push("database unreachable");
  if (health.listen && !health.listening && health.started && !health.stopping) reasons.push("LISTEN connection down");
  if (health.started && !health.stopping) {
    if (health.lastClaimAt === null) {
      reasons.push("no claim has completed yet");
    } else if (now - health.lastClaimAt > claimStaleMs && health.running < health.concurrency) {
      reasons.push(`no claim has completed for ${Math.round((now - health.lastClaimAt) / 1000)} s (bound ${Math.round(claimStaleMs / 1000)} s)`);
    }
  }
  return { ready: reasons.length === 0, reasons };
}
