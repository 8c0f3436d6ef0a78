/**
 * `npm run build && npx tsx bench/profile-process.ts`: where a worker's time goes on a
 * backlog, in the built package (dist/), as `npm run bench` measures it. Enqueues
 * JOBS no-op jobs (default 100,000), runs `VACUUM ANALYZE` (unless FRESH=1), then one
 * worker with the defaults (or the options in OPTS, JSON) processes them in this
 * process; WORKERS=N runs N worker processes instead (one worker each, as `npm run
 * bench`'s "2 processes"), and their Node CPU is summed. Prints jobs/s, PostgreSQL CPU
 * and Node CPU per 1,000 jobs, and, when the server has `pg_stat_statements` loaded
 * (shared_preload_libraries), the statements that took the most time with their
 * buffer hits and WAL: the figures behind the process notes in BENCHMARKS.md. Run
 * `perf record -a -g` beside it for a CPU profile of the server; CPU_PROFILE=file and
 * HEAP_PROFILE=file write V8 profiles of the process that runs the worker (with
 * WORKERS, one per worker process, the file name followed by its pid). Uses
 * DATABASE_URL, else an embedded PostgreSQL (no pg_stat_statements there); works in a
 * database of its own and drops it.
 */
import { fork, type ChildProcess } from "node:child_process";
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import type * as Punctual from "../src/index.js";
import { scratchDatabase } from "./lib/scratch-database.js";
import { measure, startProfilers, statementStats } from "./lib/profile.js";

// The built package, as `npm run bench` measures it (see bench/systems/punctual.ts).
const { createClient, createWorker, defineTask }: typeof Punctual = await import(new URL("../dist/index.js", import.meta.url).href);

const JOBS = Number(process.env.JOBS ?? 100_000);
const WORKERS = Number(process.env.WORKERS ?? 1);
const options = () => ({ logger: pino({ level: "silent" }), ...JSON.parse(process.env.OPTS ?? "{}") });

let started = 0;
let allStarted!: () => void;
const done = new Promise<void>((resolve) => (allStarted = resolve));
const task = defineTask({
  name: "noop",
  payload: z.object({ n: z.number() }),
  run: () => {
    if (++started === JOBS) allStarted();
    onStart();
  },
});
let onStart = () => {};

if (process.env.PROFILE_WORKER_URL) {
  // A worker process (WORKERS > 1): starts on "go", reports its starts as they come
  // (one message per turn of the event loop), and its CPU since "go" on "stop".
  const worker = createWorker({ connectionString: process.env.PROFILE_WORKER_URL, tasks: [task], ...options() });
  let cpu = process.cpuUsage();
  let stopProfilers: (suffix?: string) => Promise<void> = async () => {};
  let reporting = false;
  onStart = () => {
    if (reporting) return;
    reporting = true;
    setImmediate(() => {
      reporting = false;
      process.send!({ started });
    });
  };
  process.on("message", async (message: string) => {
    if (message === "go") {
      stopProfilers = await startProfilers();
      cpu = process.cpuUsage();
      await worker.start();
    } else if (message === "cpu") {
      const used = process.cpuUsage(cpu);
      await stopProfilers(`.${process.pid}`);
      process.send!({ cpuSeconds: (used.user + used.system) / 1e6 });
    } else {
      await worker.stop();
      process.exit(0);
    }
  });
  process.send!("ready");
} else {
  const db = await scratchDatabase("profile");
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  const statements = await statementStats(pool);
  const client = createClient({ executor: pool });
  for (let i = 0; i < JOBS; i += 1000) {
    await client.enqueueMany(Array.from({ length: Math.min(1000, JOBS - i) }, (_, k) => ({ task, payload: { n: i + k } })));
  }
  if (process.env.FRESH !== "1") await pool.query("vacuum analyze punctual.jobs");

  if (process.env.WORKERS) {
    const children = await Promise.all(Array.from({ length: WORKERS }, () => startChild(db.url)));
    const counts = children.map(() => 0);
    const stop = await measure(db.name, pool, statements);
    const all = new Promise<void>((resolve) =>
      children.forEach((child, i) =>
        child.on("message", (m: { started?: number }) => {
          if (m.started === undefined) return;
          counts[i] = m.started;
          if (counts.reduce((a, b) => a + b) >= JOBS) resolve();
        }),
      ),
    );
    for (const child of children) child.send("go");
    await all;
    const cpu = await Promise.all(children.map((child) => childCpu(child)));
    await stop(JOBS, `processed by ${WORKERS} worker processes`, cpu.reduce((a, b) => a + b));
    await Promise.all(children.map((child) => new Promise((exited) => child.once("exit", exited).send("stop"))));
  } else {
    const stop = await measure(db.name, pool, statements);
    const worker = createWorker({ connectionString: db.url, tasks: [task], ...options() });
    await worker.start();
    await done;
    await stop(JOBS, "processed");
    await worker.stop();
  }
  await pool.end();
  await db.drop();
}

function startChild(url: string): Promise<ChildProcess> {
  const child = fork(process.argv[1]!, { env: { ...process.env, PROFILE_WORKER_URL: url }, execArgv: process.execArgv });
  return new Promise((resolve) => child.once("message", () => resolve(child)));
}

/** A worker process's CPU seconds since "go". */
function childCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.on("message", (m: { cpuSeconds?: number }) => m.cpuSeconds !== undefined && resolve(m.cpuSeconds));
    child.send("cpu");
  });
}
