import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClient, defineTask } from "../../src/index.js";
import { toQueryable } from "../../src/executor.js";
import { jobClaim, jobCompleteAndClaim } from "../../src/sql/jobs.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const noop = defineTask({ name: "noop", payload: z.object({ n: z.number() }), run: () => {} });
const params = (workerId: string, limit: number) => ({ workerId, queues: ["default"], tasks: ["noop"], limit, leaseMs: 15_000 });
const success = (id: number) => ({ id, attempt: 1, next_slot: null, cron: null, tz: null, every_ms: null, fixed_delay: false });

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe("the worker's hot path: successes ride along with the next claim", () => {
  it("records its own successes, fences out another worker's, and claims the next jobs, in one prepared statement", async () => {
    const punctual = createClient({ executor: db.pool });
    await punctual.enqueueMany([0, 1, 2, 3].map((n) => ({ task: noop, payload: { n } })));
    const q = toQueryable(db.pool, { prepared: true });
    const [mine] = await jobClaim(q, params("w1", 1));
    const [theirs] = await jobClaim(q, params("w2", 1));

    const { completed, claimed } = await jobCompleteAndClaim(q, params("w1", 5), [success(Number(mine!.id)), success(Number(theirs!.id))]);

    expect(completed).toEqual([Number(mine!.id)]);
    expect(claimed.map((r) => (r.payload as { n: number }).n).sort()).toEqual([2, 3]);
    const { rows } = await db.pool.query("select payload->>'n' as n, state, locked_by from punctual.jobs order by id");
    expect(rows).toEqual([
      { n: "0", state: "succeeded", locked_by: null },
      { n: "1", state: "running", locked_by: "w2" },
      { n: "2", state: "running", locked_by: "w1" },
      { n: "3", state: "running", locked_by: "w1" },
    ]);
  });

  it("with nothing left to claim, still records the successes", async () => {
    await db.pool.query("truncate punctual.jobs");
    await createClient({ executor: db.pool }).enqueue(noop, { n: 9 });
    const q = toQueryable(db.pool, { prepared: true });
    const [job] = await jobClaim(q, params("w1", 1));
    const { completed, claimed } = await jobCompleteAndClaim(q, params("w1", 10), [success(Number(job!.id))]);
    expect(completed).toEqual([Number(job!.id)]);
    expect(claimed).toEqual([]);
  });
});

describe("claimed jobs come back most urgent first", () => {
  it("jobClaim and jobCompleteAndClaim return them by priority, then run_at, then id (not in the order rows were reached)", async () => {
    await db.pool.query("truncate punctual.jobs");
    const punctual = createClient({ executor: db.pool });
    const priorities = [5, -3, 0, 10, -10, 0];
    await punctual.enqueueMany(priorities.map((priority, n) => ({ task: noop, payload: { n }, priority })));
    const q = toQueryable(db.pool, { prepared: true });
    const first = await jobClaim(q, params("w1", 3));
    expect(first.map((r) => r.priority)).toEqual([-10, -3, 0]);
    const { claimed, completed } = await jobCompleteAndClaim(q, params("w1", 3), first.map((r) => success(Number(r.id))));
    expect(claimed.map((r) => r.priority)).toEqual([0, 5, 10]);
    expect(completed.sort()).toEqual(first.map((r) => Number(r.id)).sort());
    // The completed ids travel once, not once per claimed row.
    const { rows } = await db.pool.query("select count(*)::int as n from punctual.jobs where state = 'succeeded'");
    expect(rows[0].n).toBe(3);
  });
});
