/**
 * `npm run bench` (`-- --quick` for a short run): Punctual's own numbers on this
 * machine. Peers (graphile-worker, pg-boss, BullMQ) side by side are still to come.
 * Uses DATABASE_URL, else an embedded PostgreSQL, and a fresh database per run.
 */
import { cpus } from "node:os";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import { startDevDatabase } from "../dev/database.js";
import { createClient, createWorker, defineTask, migrate } from "../src/index.js";

const quick = process.argv.includes("--quick");
const N = quick ? 5_000 : 20_000;
const LATE_JOBS = quick ? 300 : 1_000;
const LATE_SPREAD_MS = quick ? 3_000 : 10_000;

const noop = defineTask({ name: "noop", payload: z.object({ n: z.number() }), run: () => {} });
const silent = pino({ level: "silent" });

const server = await startDevDatabase({ dataDir: path.join(tmpdir(), `punctual-bench-${process.pid}`), persistent: false });
const admin = new pg.Client({ connectionString: server.url });
await admin.connect();
const dbName = `punctual_bench_${process.pid}`;
await admin.query(`create database "${dbName}"`);
const url = new URL(server.url);
url.pathname = `/${dbName}`;
const dbUrl = url.toString();
await migrate(dbUrl);
const pool = new pg.Pool({ connectionString: dbUrl, max: 10 });
const punctual = createClient({ executor: pool });
const results: [string, string][] = [];

const reset = () => pool.query("truncate punctual.jobs");
const commits = async () =>
  Number((await pool.query("select xact_commit from pg_stat_database where datname = current_database()")).rows[0].xact_commit);

// 1. Enqueue, one job per call, 8 callers.
await reset();
let t = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (next < N) await punctual.enqueue(noop, { n: next++ });
  }),
);
results.push(["enqueue, one job per call, 8 callers", `${Math.round(N / ((performance.now() - t) / 1000))} jobs/s`]);

// 2. Enqueue through the batch API, 1,000 per call.
await reset();
t = performance.now();
for (let i = 0; i < N; i += 1000) {
  await punctual.enqueueMany(Array.from({ length: 1000 }, (_, k) => ({ task: noop, payload: { n: i + k } })));
}
results.push(["enqueue, batch API, 1,000 per call", `${Math.round(N / ((performance.now() - t) / 1000))} jobs/s`]);

// 3. Process pre-inserted jobs: one worker, concurrency 10, defaults.
await pool.query("vacuum analyze punctual.jobs");
const before = await commits();
const worker = createWorker({ pool, tasks: [noop], concurrency: 10, logger: silent });
let done = 0;
const finished = new Promise<void>((resolve) => worker.on("job:succeeded", () => ++done === N && resolve()));
t = performance.now();
await worker.start();
await finished;
const seconds = (performance.now() - t) / 1000;
await worker.stop();
const txPerJob = ((await commits()) - before) / N;
results.push(["process, 1 worker x 10, defaults", `${Math.round(N / seconds)} jobs/s, ${txPerJob.toFixed(2)} transactions/job`]);

// 4. Lateness of future jobs: run_at spread over a few seconds, one idle worker.
await reset();
const lateWorker = createWorker({ pool, tasks: [noop], concurrency: 10, logger: silent });
await lateWorker.start();
let late = 0;
const allLate = new Promise<void>((resolve) => lateWorker.on("job:succeeded", () => ++late === LATE_JOBS && resolve()));
const start = Date.now() + 500;
await punctual.enqueueMany(
  Array.from({ length: LATE_JOBS }, (_, n) => ({ task: noop, payload: { n }, runAt: new Date(start + Math.random() * LATE_SPREAD_MS) })),
);
await allLate;
await lateWorker.stop();
const { rows } = await pool.query(
  `select percentile_cont(array[0.5, 0.95, 0.99]) within group (order by ms) as p, max(ms) as max
   from (select extract(epoch from started_at - run_at) * 1000 as ms from punctual.jobs) x`,
);
const [p50, p95, p99] = (rows[0].p as number[]).map((v) => v.toFixed(1));
results.push([`future-job lateness (${LATE_JOBS} jobs over ${LATE_SPREAD_MS / 1000} s)`, `p50 ${p50} / p95 ${p95} / p99 ${p99} / max ${Number(rows[0].max).toFixed(1)} ms`]);

await pool.end();
await admin.query(`drop database "${dbName}" with (force)`);
await admin.end();
await server.stop();

const { rows: version } = { rows: [{ v: process.version }] };
console.log(`\nPunctual on ${cpus().length} cores, Node ${version[0]!.v}, PostgreSQL from ${server.source}, ${N} jobs${quick ? " (quick)" : ""}\n`);
console.log("| workload | Punctual |\n|---|---|");
for (const [name, value] of results) console.log(`| ${name} | ${value} |`);
