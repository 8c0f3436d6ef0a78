/**
 * `npm run build && npx tsx bench/profile-process.ts`: where a worker's time goes on a
 * backlog, in the built package (dist/), as `npm run bench` measures it. Enqueues
 * JOBS no-op jobs (default 100,000), runs `VACUUM ANALYZE` (unless FRESH=1), then one
 * worker with the defaults (or the options in OPTS, JSON) processes them in this
 * process; WORKERS=N runs N worker processes instead, `npm run bench`'s own
 * (bench/lib/child.ts: one worker each, with the bench's best options, OPTS unused; they
 * report starts every 50 ms, so the time measured may run up to that long over), and
 * their Node CPU is summed. Prints jobs/s, PostgreSQL CPU
 * and Node CPU per 1,000 jobs, and, when the server has `pg_stat_statements` loaded
 * (shared_preload_libraries), the statements that took the most time with their
 * buffer hits and WAL: the figures behind the process notes in BENCHMARKS.md. Run it
 * under `perf record -a -k CLOCK_MONOTONIC` for a CPU profile of the server; with
 * PERF_TIMES=1 it prints the `--time` window of the measured stretch for `perf report`
 * (add `--comm postgres --sort symbol`). WAITS=1 samples what the server's backends
 * were doing meanwhile (pg_stat_activity: on CPU, or waiting for a lock, a WAL flush…),
 * per statement. CPU_PROFILE=file and
 * HEAP_PROFILE=file write V8 profiles of the process that runs the worker (with
 * WORKERS, one per worker process, the file name followed by its pid). Uses
 * DATABASE_URL, else an embedded PostgreSQL (no pg_stat_statements there); works in a
 * database of its own and drops it.
 */
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import type * as Punctual from "../src/index.js";
import { Fleet } from "./lib/fleet.js";
import { scratchDatabase } from "./lib/scratch-database.js";
import { measure, statementStats } from "./lib/profile.js";

// The built package, as `npm run bench` measures it (see bench/systems/punctual.ts).
const { createClient, createWorker, defineTask }: typeof Punctual = await import(new URL("../dist/index.js", import.meta.url).href);

const JOBS = Number(process.env.JOBS ?? 100_000);
const WORKERS = process.env.WORKERS ? Number(process.env.WORKERS) : null;

let started = 0;
let allStarted!: () => void;
const done = new Promise<void>((resolve) => (allStarted = resolve));
// The bench's task too ("noop", payload { n }): the worker processes run that one.
const task = defineTask({
  name: "noop",
  payload: z.object({ n: z.number() }),
  run: () => {
    if (++started === JOBS) allStarted();
  },
});

const db = await scratchDatabase("profile");
const pool = new pg.Pool({ connectionString: db.url, max: 4 });
const statements = await statementStats(pool);
const client = createClient({ executor: pool });
for (let i = 0; i < JOBS; i += 1000) {
  await client.enqueueMany(Array.from({ length: Math.min(1000, JOBS - i) }, (_, k) => ({ task, payload: { n: i + k } })));
}
if (process.env.FRESH !== "1") await pool.query("vacuum analyze punctual.jobs");

if (WORKERS !== null) {
  // `npm run bench`'s worker processes (bench/lib/child.ts), with its best options.
  const fleet = await Fleet.load("punctual", { dbUrl: db.url, redisUrl: "" }, WORKERS, 10, "best");
  const stop = await measure(db.name, pool, statements, false);
  await fleet.go();
  await fleet.until(() => fleet.starts.length >= JOBS, 600_000);
  await stop(JOBS, `processed by ${WORKERS} worker processes`, await fleet.cpuSeconds());
  await fleet.stop();
} else {
  const stop = await measure(db.name, pool, statements);
  const worker = createWorker({ connectionString: db.url, tasks: [task], logger: pino({ level: "silent" }), ...JSON.parse(process.env.OPTS ?? "{}") });
  await worker.start();
  await done;
  await stop(JOBS, "processed");
  await worker.stop();
}
await pool.end();
await db.drop();
