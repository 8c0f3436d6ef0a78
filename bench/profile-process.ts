/**
 * `npm run build && npx tsx bench/profile-process.ts`: where one worker's time goes on a
 * backlog, in the built package (dist/), as `npm run bench` measures it. Enqueues
 * JOBS no-op jobs (default 100,000), runs `VACUUM ANALYZE` (unless FRESH=1), then one
 * worker with the defaults (or the options in OPTS, JSON) processes them in this
 * process. Prints jobs/s, PostgreSQL CPU and Node CPU per 1,000 jobs, and, when the
 * server has `pg_stat_statements` loaded (shared_preload_libraries), the statements
 * that took the most time with their buffer hits and WAL: the figures behind the
 * process notes in BENCHMARKS.md. Run `perf record -a -g` beside it for a CPU profile
 * of the server, and CPU_PROFILE=file.cpuprofile for one of this process. Uses
 * DATABASE_URL, else an embedded PostgreSQL (no pg_stat_statements there); works in a
 * database of its own and drops it.
 */
import { writeFileSync } from "node:fs";
import inspector from "node:inspector/promises";
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import type * as Punctual from "../src/index.js";
import { scratchDatabase } from "./lib/scratch-database.js";
import { postgresCpu } from "./lib/measure.js";

// The built package, as `npm run bench` measures it (see bench/systems/punctual.ts).
const { createClient, createWorker, defineTask }: typeof Punctual = await import(new URL("../dist/index.js", import.meta.url).href);

const JOBS = Number(process.env.JOBS ?? 100_000);
const db = await scratchDatabase("profile");
const pool = new pg.Pool({ connectionString: db.url, max: 4 });
const statements = await pool
  .query("create extension if not exists pg_stat_statements")
  .then(() => pool.query("select pg_stat_statements_reset()"))
  .then(
    () => true,
    () => false,
  );

let started = 0;
let allStarted!: () => void;
const done = new Promise<void>((resolve) => (allStarted = resolve));
const task = defineTask({
  name: "noop",
  payload: z.object({ n: z.number() }),
  run: () => {
    if (++started === JOBS) allStarted();
  },
});
const client = createClient({ executor: pool });
for (let i = 0; i < JOBS; i += 1000) {
  await client.enqueueMany(Array.from({ length: Math.min(1000, JOBS - i) }, (_, k) => ({ task, payload: { n: i + k } })));
}
if (process.env.FRESH !== "1") await pool.query("vacuum analyze punctual.jobs");
if (statements) await pool.query("select pg_stat_statements_reset()");

// CPU_PROFILE=file.cpuprofile: a V8 CPU profile of this process while the worker runs
// (open it in Chrome's DevTools, or sum self time per function).
const profiler = process.env.CPU_PROFILE ? new inspector.Session() : null;
if (profiler) {
  profiler.connect();
  await profiler.post("Profiler.enable");
  await profiler.post("Profiler.start");
}
const pgCpu = postgresCpu(db.name);
const nodeCpu = process.cpuUsage();
const t0 = performance.now();
const worker = createWorker({ connectionString: db.url, tasks: [task], logger: pino({ level: "silent" }), ...JSON.parse(process.env.OPTS ?? "{}") });
await worker.start();
await done;
const ms = performance.now() - t0;
const pgSeconds = pgCpu();
const node = process.cpuUsage(nodeCpu);
if (profiler) {
  const { profile } = await profiler.post("Profiler.stop");
  writeFileSync(process.env.CPU_PROFILE!, JSON.stringify(profile));
  profiler.disconnect();
}
await worker.stop();

const perThousand = (seconds: number) => `${((seconds * 1_000_000) / JOBS).toFixed(1)} ms`;
console.log(
  `${JOBS.toLocaleString("en-US")} jobs in ${(ms / 1000).toFixed(2)} s: ${Math.round((JOBS / ms) * 1000).toLocaleString("en-US")} jobs/s; ` +
    `per 1,000 jobs: PostgreSQL CPU ${pgSeconds === null ? "n/a (server not local)" : perThousand(pgSeconds)}, ` +
    `Node CPU ${perThousand((node.user + node.system) / 1e6)}`,
);
if (statements) {
  const { rows } = await pool.query(
    `select calls, round(total_exec_time::numeric) as exec_ms, rows, shared_blks_hit as buffer_hits, wal_records,
            round(wal_bytes / 1e6, 1) as wal_mb, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) as statement
     from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
     order by total_exec_time desc limit 6`,
  );
  console.table(rows);
} else {
  console.log("(pg_stat_statements is not loaded on this server: no per-statement figures)");
}
await pool.end();
await db.drop();
