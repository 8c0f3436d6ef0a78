/** Measuring helpers for `npm run bench`: PostgreSQL CPU from /proc, percentiles. */
import { readdirSync, readFileSync } from "node:fs";

/** CPU ticks per process named postgres: the server's own processes, and backends of `db`. */
function postgresTicks(db: string): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      if (stat.slice(stat.indexOf("(") + 1, close) !== "postgres") continue;
      // A backend's title reads "postgres: [cluster: ]user db host(port) state".
      const title = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const backend = /^postgres: (?:[^ ]+: )?[^ ]+ ([^ ]+) (?:[^ ]+\(\d+\)|\[local\])/.exec(title);
      if (backend && backend[1] !== db) continue;
      const fields = stat.slice(close + 2).split(" ");
      ticks.set(pid, Number(fields[11]) + Number(fields[12])); // utime + stime
    } catch {
      // The process ended while we read it.
    }
  }
  return ticks;
}

/**
 * Starts measuring the CPU PostgreSQL spends for database `db` (its backends plus the
 * server's WAL writer, checkpointer, autovacuum...). Returns a function that gives the
 * seconds used since, or null when no local PostgreSQL process is visible. Backends
 * that exit before the reading lose their share, so read before closing connections.
 */
export function postgresCpu(db: string): () => number | null {
  const before = postgresTicks(db);
  return () => {
    if (before.size === 0) return null;
    let used = 0;
    for (const [pid, t] of postgresTicks(db)) used += t - (before.get(pid) ?? 0);
    return used / 100; // USER_HZ
  };
}

/** The q-quantile (0..1) of values, by the nearest-rank method; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function latencySummary(values: readonly number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
