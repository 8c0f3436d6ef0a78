/**
 * What the one-process profiles (`bench/profile-process.ts`, `bench/profile-enqueue.ts`)
 * share: the statistics extension, a measured stretch (wall time, PostgreSQL CPU, this
 * process's CPU, and a V8 CPU profile with CPU_PROFILE=file.cpuprofile) and the report.
 */
import { writeFileSync } from "node:fs";
import inspector from "node:inspector/promises";
import type pg from "pg";
import { postgresCpu } from "./measure.js";

/** Loads `pg_stat_statements` in the database when the server has it; false when it does not. */
export async function statementStats(pool: pg.Pool): Promise<boolean> {
  return pool.query("create extension if not exists pg_stat_statements").then(
    () => true,
    () => false,
  );
}

/** Starts measuring; the returned function stops and prints `what` per second and per 1,000 jobs. */
export async function measure(database: string, pool: pg.Pool, statements: boolean): Promise<(jobs: number, what: string) => Promise<void>> {
  if (statements) await pool.query("select pg_stat_statements_reset()");
  // CPU_PROFILE=file.cpuprofile: a V8 CPU profile of this process over the measured
  // stretch (open it in Chrome's DevTools, or sum self time per function).
  const profiler = process.env.CPU_PROFILE ? new inspector.Session() : null;
  if (profiler) {
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  const pgCpu = postgresCpu(database);
  const nodeCpu = process.cpuUsage();
  const t0 = performance.now();
  return async (jobs, what) => {
    const ms = performance.now() - t0;
    const pgSeconds = pgCpu();
    const node = process.cpuUsage(nodeCpu);
    if (profiler) {
      const { profile } = await profiler.post("Profiler.stop");
      writeFileSync(process.env.CPU_PROFILE!, JSON.stringify(profile));
      profiler.disconnect();
    }
    const perThousand = (seconds: number) => `${((seconds * 1_000_000) / jobs).toFixed(1)} ms`;
    console.log(
      `${jobs.toLocaleString("en-US")} jobs ${what} in ${(ms / 1000).toFixed(2)} s: ${Math.round((jobs / ms) * 1000).toLocaleString("en-US")} jobs/s; ` +
        `per 1,000 jobs: PostgreSQL CPU ${pgSeconds === null ? "n/a (server not local)" : perThousand(pgSeconds)}, ` +
        `Node CPU ${perThousand((node.user + node.system) / 1e6)}`,
    );
    if (!statements) {
      console.log("(pg_stat_statements is not loaded on this server: no per-statement figures)");
      return;
    }
    const { rows } = await pool.query(
      `select calls, round(total_exec_time::numeric) as exec_ms, rows, shared_blks_hit as buffer_hits, wal_records,
              round(wal_bytes / 1e6, 1) as wal_mb, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) as statement
       from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
       order by total_exec_time desc limit 6`,
    );
    console.table(rows);
  };
}
