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
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import type * as Punctual from "../src/index.js";
import { scratchDatabase } from "./lib/scratch-database.js";
import { measure, statementStats } from "./lib/profile.js";

// The built package, as `npm run bench` measures it (see bench/systems/punctual.ts).
const { createClient, createWorker, defineTask }: typeof Punctual = await import(new URL("../dist/index.js", import.meta.url).href);

const JOBS = Number(process.env.JOBS ?? 100_000);
const db = await scratchDatabase("profile");
const pool = new pg.Pool({ connectionString: db.url, max: 4 });
const statements = await statementStats(pool);

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

const stop = await measure(db.name, pool, statements);
const worker = createWorker({ connectionString: db.url, tasks: [task], logger: pino({ level: "silent" }), ...JSON.parse(process.env.OPTS ?? "{}") });
await worker.start();
await done;
await stop(JOBS, "processed");
await worker.stop();
await pool.end();
await db.drop();
