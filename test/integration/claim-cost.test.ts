import { afterAll, beforeAll, expect, it } from "vitest";
import type { Queryable } from "../../src/executor.js";
import { jobClaim, jobNextRunAt } from "../../src/sql/jobs.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// The claim's cost, in buffers PostgreSQL touches (deterministic, unlike time), must not
// grow with future-dated rows (per-user schedules) or with finished rows awaiting pruning.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

/** Runs `statement` under EXPLAIN (ANALYZE, BUFFERS) in a rolled-back transaction; returns buffers touched. */
async function buffersOf(statement: (q: Queryable) => Promise<unknown>): Promise<number> {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    let buffers = -1;
    const explaining: Queryable = {
      async query(text, values) {
        const { rows } = await client.query(`explain (analyze, buffers, format json) ${text}`, values as unknown[]);
        const plan = rows[0]["QUERY PLAN"][0].Plan;
        buffers = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"];
        return [{}] as never; // the statement's own rows do not matter here
      },
    };
    await statement(explaining);
    return buffers;
  } finally {
    await client.query("rollback");
    client.release();
  }
}

const claim = (q: Queryable) =>
  jobClaim(q, { workerId: "w", queues: ["default"], tasks: ["t"], limit: 10, leaseMs: 1000 });
const lookAhead = (q: Queryable) => jobNextRunAt(q, ["default"], ["t"]);

async function addRows(future: number, finished: number) {
  await db.pool.query(
    `insert into punctual.jobs (task, priority, run_at)
     select 't', (g % 3) - 1, now() + interval '1 hour' + g * interval '1 second' from generate_series(1, $1::int) g`,
    [future],
  );
  await db.pool.query(
    `insert into punctual.jobs (task, state, finished_at)
     select 't', 'succeeded', now() - interval '1 hour' from generate_series(1, $1::int)`,
    [finished],
  );
  await db.pool.query("vacuum analyze punctual.jobs");
}

/** The plain query the claim avoids: one ordered scan over all pending rows. */
const naiveClaim = (q: Queryable) =>
  q.query(`select id from punctual.jobs where state = 'pending' and run_at <= now() and task = 't'
           order by priority, run_at, id limit 10 for update skip locked`);

it("claiming and looking ahead cost the same with 100,000 or 400,000 future rows and growing finished rows", async () => {
  await db.pool.query(`insert into punctual.jobs (task, priority) select 't', (g % 3) - 1 from generate_series(1, 20) g`);
  await addRows(100_000, 50_000);
  const before = { claim: await buffersOf(claim), lookAhead: await buffersOf(lookAhead) };
  await addRows(300_000, 50_000);
  const after = { claim: await buffersOf(claim), lookAhead: await buffersOf(lookAhead), naive: await buffersOf(naiveClaim) };
  console.log(`buffers touched: claim ${before.claim} -> ${after.claim}, look-ahead ${before.lookAhead} -> ${after.lookAhead}, naive claim ${after.naive}`);

  expect(after.claim).toBeLessThanOrEqual(before.claim * 1.2 + 10);
  // The look-ahead reads the next 16 due times per priority: with more rows those may
  // sit on more distinct heap pages (one each, at most), not more rows.
  expect(after.lookAhead).toBeLessThanOrEqual(before.lookAhead * 1.2 + 10 + 16);
  // The measure can tell: the plain ordered scan walks the future rows of the first priority.
  expect(after.naive).toBeGreaterThan(after.claim * 4);
});
