/**
 * `npm run build && npx tsx bench/profile-enqueue.ts`: where a batch enqueue's time goes,
 * in the built package (dist/), as `npm run bench` measures it. Enqueues JOBS no-op jobs
 * (default 100,000) in calls of BATCH (default 1,000), one call after the other as the
 * bench's batch workload does, and prints jobs/s, PostgreSQL CPU and Node CPU per 1,000
 * jobs, and (with `pg_stat_statements` loaded) the statements that took the most time.
 * CPU_PROFILE=file.cpuprofile writes a V8 CPU profile of this process. Uses
 * DATABASE_URL, else an embedded PostgreSQL; works in a database of its own and drops it.
 */
import { writeFileSync } from "node:fs";
import inspector from "node:inspector/promises";
import pg from "pg";
import { z } from "zod";
import type * as Punctual from "../src/index.js";
import { scratchDatabase } from "./lib/scratch-database.js";
import { postgresCpu } from "./lib/measure.js";

// The built package, as `npm run bench` measures it (see bench/systems/punctual.ts).
const { createClient, defineTask }: typeof Punctual = await import(new URL("../dist/index.js", import.meta.url).href);

const JOBS = Number(process.env.JOBS ?? 100_000);
const BATCH = Number(process.env.BATCH ?? 1_000);
const db = await scratchDatabase("profile-enqueue");
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
const statements = await pool
  .query("create extension if not exists pg_stat_statements")
  .then(() => true, () => false);
// The bench's payload: the job's number, and when it was meant to start.
const task = defineTask({ name: "noop", payload: z.object({ n: z.number(), t: z.number().optional() }), run: () => {} });
const client = createClient({ executor: pool });
// Warm up (prepared statements, JIT) on a tenth, then measure on a fresh table.
for (let i = 0; i < JOBS / 10; i += BATCH) {
  await client.enqueueMany(Array.from({ length: BATCH }, (_, k) => ({ task, payload: { n: i + k, t: Date.now() } })));
}
await pool.query("truncate punctual.jobs");
if (statements) await pool.query("select pg_stat_statements_reset()");

const profiler = process.env.CPU_PROFILE ? new inspector.Session() : null;
if (profiler) {
  profiler.connect();
  await profiler.post("Profiler.enable");
  await profiler.post("Profiler.start");
}
const pgCpu = postgresCpu(db.name);
const nodeCpu = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < JOBS; i += BATCH) {
  await client.enqueueMany(Array.from({ length: Math.min(BATCH, JOBS - i) }, (_, k) => ({ task, payload: { n: i + k, t: Date.now() } })));
}
const ms = performance.now() - t0;
const pgSeconds = pgCpu();
const node = process.cpuUsage(nodeCpu);
if (profiler) {
  const { profile } = await profiler.post("Profiler.stop");
  writeFileSync(process.env.CPU_PROFILE!, JSON.stringify(profile));
  profiler.disconnect();
}

const perThousand = (seconds: number) => `${((seconds * 1_000_000) / JOBS).toFixed(1)} ms`;
console.log(
  `${JOBS.toLocaleString("en-US")} jobs in calls of ${BATCH.toLocaleString("en-US")} in ${(ms / 1000).toFixed(2)} s: ` +
    `${Math.round((JOBS / ms) * 1000).toLocaleString("en-US")} jobs/s; per 1,000 jobs: PostgreSQL CPU ` +
    `${pgSeconds === null ? "n/a (server not local)" : perThousand(pgSeconds)}, Node CPU ${perThousand((node.user + node.system) / 1e6)}`,
);
if (statements) {
  const { rows } = await pool.query(
    `select calls, round(total_exec_time::numeric) as exec_ms, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as statement
     from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
     order by total_exec_time desc limit 4`,
  );
  console.table(rows);
}
await pool.end();
await db.drop();
