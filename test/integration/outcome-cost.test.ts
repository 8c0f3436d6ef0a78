import { afterAll, beforeAll, expect, it } from "vitest";
import type { Queryable } from "../../src/executor.js";
import {
  jobCompleteAndClaim,
  jobCompleteMany,
  jobFailMany,
  jobPlaceMany,
  jobReleaseMany,
  jobRenewLeases,
  jobUnclaimMany,
} from "../../src/sql/jobs.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// The statements that write a worker's outcomes, renew its leases and hand its jobs
// back do work in proportion to the jobs they are given, also on a table that has never
// been analyzed (a backlog enqueued and processed before autovacuum comes by; the
// machine's PostgreSQL has autovacuum off). Counted in rows the plan's nodes produce
// (deterministic, unlike time): a plan that tests every running row against every
// input row produces millions for a couple of thousand jobs.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const JOBS = 2000;

/** Rows produced by every node of a JSON plan (actual rows times loops), summed. */
function rowsProduced(plan: Record<string, unknown>): number {
  const own = Number(plan["Actual Rows"]) * Number(plan["Actual Loops"]);
  const children = (plan["Plans"] as Record<string, unknown>[] | undefined) ?? [];
  return own + children.reduce((sum, child) => sum + rowsProduced(child), 0);
}

/** JOBS jobs running under worker "w" (attempt 1, half of them marked started), and as many pending. */
const RUNNING = `
  insert into punctual.jobs (task, state, locked_by, locked_until, attempts, started_at)
  select 't', 'running', 'w', now() + interval '1 hour', 1, case when g % 2 = 0 then now() end
  from generate_series(1, ${JOBS}) as g;
  insert into punctual.jobs (task) select 't' from generate_series(1, ${JOBS})`;

type Held = { id: number; attempt: number }[];

/**
 * Adds RUNNING's rows in a transaction, runs `statement` for them under EXPLAIN
 * (ANALYZE, format json), and rolls back; returns the rows its plan produced and the
 * rows it returned.
 */
async function costOf(statement: (q: Queryable, held: Held) => Promise<unknown>) {
  const client = await db.pool.connect();
  try {
    await client.query("begin");
    await client.query(RUNNING);
    const { rows: held } = await client.query("select id::int, attempts as attempt from punctual.jobs where state = 'running' order by id");
    let produced = -1;
    let returned = -1;
    const explaining: Queryable = {
      async query(text, values) {
        const { rows } = await client.query(`explain (analyze, format json) ${text}`, values as unknown[]);
        const plan = rows[0]["QUERY PLAN"][0].Plan;
        produced = rowsProduced(plan);
        returned = Number(plan["Actual Rows"]);
        return [] as never; // the statement's own rows do not matter here
      },
    };
    await statement(explaining, held);
    return { produced, returned };
  } finally {
    await client.query("rollback");
    client.release();
  }
}

const success = (j: Held[number]) => ({ ...j, next_slot: null, cron: null, tz: null, every_ms: null, fixed_delay: false, started_ago_ms: 5 });
const claimParams = { workerId: "w", queues: ["default"], tasks: ["t"], limit: 10, leaseMs: 30_000 };

it.each<[string, number, (q: Queryable, held: Held) => Promise<unknown>]>([
  ["successes (kept)", JOBS, (q, held) => jobCompleteMany(q, "w", held.map(success))],
  ["successes (deleted, retention 0)", JOBS, (q, held) => jobCompleteMany(q, "w", held.map(success), true)],
  // Its answer is the 10 jobs it claimed, then a row saying what was recorded.
  ["successes with the next claim", 11, (q, held) => jobCompleteAndClaim(q, claimParams, held.map(success))],
  [
    "failures",
    JOBS,
    (q, held) => jobFailMany(q, "w", held.map((j) => ({ ...success(j), message: "x", stack: null, retry_delay_ms: 1000, retryable: true }))),
  ],
  ["lease renewals", JOBS, (q, held) => jobRenewLeases(q, "w", held.map((j) => ({ ...j, startedAgoMs: 5 })), 30_000)],
  // Only the jobs not marked started go back.
  ["hand-backs of buffered jobs", JOBS / 2, (q, held) => jobUnclaimMany(q, "w", held)],
  ["releases on stop", JOBS, (q, held) => jobReleaseMany(q, "w", held)],
  ["placements on a slot", JOBS, (q, held) => jobPlaceMany(q, "w", held.map((j) => ({ ...j, slot: new Date() })))],
])(`%s: ${JOBS} jobs on a table never analyzed cost in proportion to the jobs`, async (_what, answered, statement) => {
  const { rows } = await db.pool.query("select reltuples from pg_class where oid = 'punctual.jobs'::regclass");
  expect(Number(rows[0].reltuples), "the table has no statistics (nor rows)").toBeLessThanOrEqual(0);
  const cost = await costOf(statement);
  // Every held job was found (the fence matched it), by a plan that produced a few rows
  // per job, not one per pair of (running row, input row): 4,000,000 for 2,000 jobs.
  expect(cost.returned).toBe(answered);
  expect(cost.produced).toBeLessThan(20 * JOBS);
});
