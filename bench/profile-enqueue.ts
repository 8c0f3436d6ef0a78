/**
 * `npm run build && npx tsx bench/profile-enqueue.ts`: where a batch enqueue's time goes,
 * in the built package (dist/), as `npm run bench` measures it. Enqueues JOBS no-op jobs
 * (default 100,000) in calls of BATCH (default 1,000), one call after the other as the
 * bench's batch workload does, and prints jobs/s, PostgreSQL CPU and Node CPU per 1,000
 * jobs, and (with `pg_stat_statements` loaded) the statements that took the most time.
 * CPU_PROFILE=file.cpuprofile writes a V8 CPU profile of this process. Uses
 * DATABASE_URL, else an embedded PostgreSQL; works in a database of its own and drops it.
 */
import pg from "pg";
import { z } from "zod";
import type * as Punctual from "../src/index.js";
import { scratchDatabase } from "./lib/scratch-database.js";
import { measure, statementStats } from "./lib/profile.js";

// The built package, as `npm run bench` measures it (see bench/systems/punctual.ts).
const { createClient, defineTask }: typeof Punctual = await import(new URL("../dist/index.js", import.meta.url).href);

const JOBS = Number(process.env.JOBS ?? 100_000);
const BATCH = Number(process.env.BATCH ?? 1_000);
const db = await scratchDatabase("profile-enqueue");
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
const statements = await statementStats(pool);
// The bench's payload: the job's number, and when it was meant to start.
const task = defineTask({ name: "noop", payload: z.object({ n: z.number(), t: z.number().optional() }), run: () => {} });
const client = createClient({ executor: pool });
/** Enqueues `count` jobs, BATCH per call, one call after the other. */
async function enqueueAll(count: number) {
  for (let i = 0; i < count; i += BATCH) {
    await client.enqueueMany(Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => ({ task, payload: { n: i + k, t: Date.now() } })));
  }
}
// Warm up (prepared statements, JIT) on a tenth, then measure on a fresh table.
await enqueueAll(JOBS / 10);
await pool.query("truncate punctual.jobs");

const stop = await measure(db.name, pool, statements);
await enqueueAll(JOBS);
await stop(JOBS, `enqueued in calls of ${BATCH.toLocaleString("en-US")}`);
await pool.end();
await db.drop();
