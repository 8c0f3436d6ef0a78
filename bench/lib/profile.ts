/**
 * What the one-process profiles (`bench/profile-process.ts`, `bench/profile-enqueue.ts`)
 * share: the statistics extension, a measured stretch (wall time, PostgreSQL CPU, Node
 * CPU, and V8 profiles on request: see `startProfilers`) and the report.
 */
import { writeFileSync } from "node:fs";
import inspector from "node:inspector/promises";
import type pg from "pg";
import { postgresCpu } from "./measure.js";

/** Loads `pg_stat_statements` in the database when the server has it; false when it does not. */
export async function statementStats(pool: pg.Pool): Promise<boolean> {
  // The extension can be created on a server that has not loaded the library; reading
  // the view tells.
  return pool.query("create extension if not exists pg_stat_statements").then(
    () => pool.query("select 1 from pg_stat_statements limit 1").then(
      () => true,
      () => false,
    ),
    () => false,
  );
}

/**
 * Starts V8's profilers in this process, as the environment asks:
 * - CPU_PROFILE=file.cpuprofile: a CPU profile (open it in Chrome's DevTools, or sum
 *   self time per function);
 * - HEAP_PROFILE=file.heapprofile: where this process allocates (sampled, objects the
 *   garbage collector has freed since included).
 * The returned function stops them and writes the files, with `suffix` after each name
 * (worker processes write one each).
 */
export async function startProfilers(): Promise<(suffix?: string) => Promise<void>> {
  const cpu = process.env.CPU_PROFILE ? new inspector.Session() : null;
  if (cpu) {
    cpu.connect();
    await cpu.post("Profiler.enable");
    await cpu.post("Profiler.start");
  }
  const heap = process.env.HEAP_PROFILE ? new inspector.Session() : null;
  if (heap) {
    heap.connect();
    await heap.post("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  return async (suffix = "") => {
    if (cpu) {
      const { profile } = await cpu.post("Profiler.stop");
      writeFileSync(`${process.env.CPU_PROFILE}${suffix}`, JSON.stringify(profile));
      cpu.disconnect();
    }
    if (heap) {
      const { profile } = await heap.post("HeapProfiler.stopSampling");
      writeFileSync(`${process.env.HEAP_PROFILE}${suffix}`, JSON.stringify(profile));
      heap.disconnect();
    }
  };
}

/**
 * Starts measuring; the returned function stops and prints `what` per second and per
 * 1,000 jobs. Node CPU is this process's (profiled as `startProfilers` says, unless
 * `profileHere` is false), or `nodeSeconds` when given (work done in other processes,
 * measured and profiled there).
 */
export async function measure(
  database: string,
  pool: pg.Pool,
  statements: boolean,
  profileHere = true,
): Promise<(jobs: number, what: string, nodeSeconds?: number) => Promise<void>> {
  if (statements) await pool.query("select pg_stat_statements_reset()");
  const stopProfilers = profileHere ? await startProfilers() : async () => {};
  const stopWaits = process.env.WAITS ? await sampleWaits(database, pool) : null;
  const pgCpu = postgresCpu(database);
  const nodeCpu = process.cpuUsage();
  const t0 = performance.now();
  // PERF_TIMES=1: the measured stretch on CLOCK_MONOTONIC, for `perf record -k
  // CLOCK_MONOTONIC` and `perf report --time start,end`.
  const monotonic = () => (Number(process.hrtime.bigint()) / 1e9).toFixed(6);
  const perfStart = monotonic();
  return async (jobs, what, nodeSeconds) => {
    if (process.env.PERF_TIMES) console.log(`perf report --time ${perfStart},${monotonic()}`);
    const ms = performance.now() - t0;
    const pgSeconds = pgCpu();
    const node = process.cpuUsage(nodeCpu);
    await stopProfilers();
    const waits = await stopWaits?.();
    const perThousand = (seconds: number) => `${((seconds * 1_000_000) / jobs).toFixed(1)} ms`;
    console.log(
      `${jobs.toLocaleString("en-US")} jobs ${what} in ${(ms / 1000).toFixed(2)} s: ${Math.round((jobs / ms) * 1000).toLocaleString("en-US")} jobs/s; ` +
        `per 1,000 jobs: PostgreSQL CPU ${pgSeconds === null ? "n/a (server not local)" : perThousand(pgSeconds)}, ` +
        `Node CPU ${perThousand(nodeSeconds ?? (node.user + node.system) / 1e6)}`,
    );
    if (waits) console.table(waits);
    if (!statements) {
      console.log("(pg_stat_statements is not loaded on this server: no per-statement figures)");
      return;
    }
    const { rows } = await pool.query(
      `select calls, plans, round(total_plan_time::numeric) as plan_ms, round(total_exec_time::numeric) as exec_ms, rows, shared_blks_hit as buffer_hits, wal_records,
              round(wal_bytes / 1e6, 1) as wal_mb, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) as statement
       from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
       order by total_exec_time desc limit 6`,
    );
    console.table(rows);
  };
}

/**
 * WAITS=1: what the server's backends in `database` were doing while measured, sampled
 * from pg_stat_activity every few milliseconds: for each statement, the share of its
 * samples on CPU and in each wait (a lock held by another worker's statement, the WAL
 * flush of a commit). The returned function stops sampling and gives the table.
 */
async function sampleWaits(database: string, pool: pg.Pool): Promise<() => Promise<Record<string, string | number>[]>> {
  const client = await pool.connect();
  const counts = new Map<string, { statement: string; wait: string; samples: number }>();
  const perStatement = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await client.query<{ wait: string; statement: string }>(
        `select coalesce(wait_event_type || ':' || wait_event, 'on CPU') as wait,
                -- Outcome writes begin alike; a claim carrying them says so.
                left(regexp_replace(query, '\\s+', ' ', 'g'), 50)
                  || case when query like '%claimed as (%' then ' … claim' else '' end as statement
         from pg_stat_activity where datname = $1 and state = 'active' and pid <> pg_backend_pid()`,
        [database],
      );
      for (const { wait, statement } of rows) {
        const key = `${statement}\u0000${wait}`;
        const entry = counts.get(key) ?? { statement, wait, samples: 0 };
        entry.samples++;
        counts.set(key, entry);
        perStatement.set(statement, (perStatement.get(statement) ?? 0) + 1);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return async () => {
    running = false;
    await loop;
    client.release();
    return [...counts.values()]
      .filter((e) => e.samples >= 5)
      .sort((a, b) => perStatement.get(b.statement)! - perStatement.get(a.statement)! || b.samples - a.samples)
      .map((e) => ({
        statement: e.statement,
        wait: e.wait,
        samples: e.samples,
        share: `${Math.round((100 * e.samples) / perStatement.get(e.statement)!)}%`,
      }));
  };
}
