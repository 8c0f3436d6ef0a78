import { afterAll, beforeAll, expect, it } from "vitest";
import { toQueryable, type Queryable } from "../../src/executor.js";
import { jobCompleteAndClaim, jobCompleteMany, jobRenewLeases } from "../../src/sql/jobs.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// A backlog enqueued and processed at once, before autovacuum has analyzed the table
// (or on a server with autovacuum off): the outcome statements must still look each job
// up by primary key, not walk the running rows (and the dead index entries of every row
// that ran since the last vacuum) for each outcome. That plan made processing a fresh
// backlog half as fast as a vacuumed one, and slower with every batch.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

/** The plan PostgreSQL chooses for each statement `run` sends (EXPLAIN, not run). */
async function plansOf(run: (q: Queryable) => Promise<unknown>): Promise<string> {
  const plans: string[] = [];
  const explaining: Queryable = {
    async query(text, values) {
      const { rows } = await db.pool.query(`explain (format json) ${text}`, values as unknown[]);
      plans.push(JSON.stringify(rows[0]["QUERY PLAN"]));
      return [] as never;
    },
  };
  await run(explaining);
  return plans.join("\n");
}

it("outcomes and lease renewals on a never-analyzed backlog look jobs up by primary key", async () => {
  await db.pool.query(`insert into punctual.jobs (task) select 't' from generate_series(1, 30000)`);
  const { rows: analyzed } = await db.pool.query(
    "select coalesce(last_analyze, last_autoanalyze) as at from pg_stat_user_tables where relid = 'punctual.jobs'::regclass",
  );
  expect(analyzed[0].at).toBeNull();
  // Work through part of it, as a worker would: claim 256 at a time, completing the last batch.
  const q = toQueryable(db.pool);
  const params = { workerId: "w", queues: ["default"], tasks: ["t"], limit: 256, leaseMs: 60_000 };
  let held: { id: number; attempt: number }[] = [];
  for (let round = 0; round < 40; round++) {
    const { claimed } = await jobCompleteAndClaim(q, params, held.map((h) => ({ ...h, ...noRule })));
    held = claimed.map((c) => ({ id: Number(c.id), attempt: c.attempts }));
  }
  const outcomes = held.map((h) => ({ ...h, ...noRule }));
  const plans = [
    await plansOf((e) => jobCompleteMany(e, "w", outcomes)),
    await plansOf((e) => jobCompleteAndClaim(e, params, outcomes)),
    await plansOf((e) => jobRenewLeases(e, "w", held.map((h) => ({ ...h, startedAgoMs: null })), 60_000)),
  ];
  // Never by walking the lease index; the outcomes by primary key. (A renewal may scan a
  // table this small outright, which costs the same for each renewal.)
  for (const plan of plans) expect(plan).not.toContain("jobs_lease_idx");
  for (const plan of plans.slice(0, 2)) expect(plan).toContain('"Index Name":"jobs_pkey"');
});

const noRule = { next_slot: null, cron: null, tz: null, every_ms: null, fixed_delay: false };
