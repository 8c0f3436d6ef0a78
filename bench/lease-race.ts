/**
 * `npx tsx bench/lease-race.ts`: processes 5,000 no-op jobs with a lease renewal every
 * 10 ms and counts `job:lost` events. Every job succeeds, so any lost event is false:
 * a renewal that raced a completion (issue 9, item 5). Uses DATABASE_URL, else an
 * embedded PostgreSQL; works in a database of its own and drops it.
 */
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import { createClient, createWorker, defineTask } from "../src/index.js";
import { scratchDatabase } from "./lib/scratch-database.js";

const JOBS = 5000;
const db = await scratchDatabase("lease-race");
const pool = new pg.Pool({ connectionString: db.url, max: 8 });
const task = defineTask({
  name: "short",
  payload: z.object({ n: z.number() }),
  run: () => new Promise((resolve) => setTimeout(resolve, Math.random() * 3)),
});
await createClient({ executor: pool }).enqueueMany(Array.from({ length: JOBS }, (_, n) => ({ task, payload: { n } })));
const worker = createWorker({ pool, tasks: [task], heartbeatIntervalMs: 10, logger: pino({ level: "silent" }) });
let lost = 0;
let succeeded = 0;
worker.on("job:lost", () => (lost += 1));
await new Promise<void>((resolve) => {
  worker.on("job:succeeded", () => (succeeded += 1) === JOBS && resolve());
  void worker.start();
});
await worker.stop();
const { rows } = await pool.query("select state, count(*)::int as jobs from punctual.jobs group by state");
console.log(JSON.stringify({ jobs: JOBS, succeeded, falseLostEvents: lost, table: rows }));
await pool.end();
await db.drop();
