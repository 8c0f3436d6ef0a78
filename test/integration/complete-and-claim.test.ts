import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClient, defineTask } from "../../src/index.js";
import { toQueryable } from "../../src/executor.js";
import { jobClaim, jobCompleteAndClaim, jobCompleteMany } from "../../src/sql/jobs.js";
import { OutcomeBatcher } from "../../src/worker/outcome-batcher.js";
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

    expect(completed).toEqual([{ id: Number(mine!.id), attempt: 1 }]);
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
    expect(completed).toBe("all");
    expect(claimed).toEqual([]);
    const { rows } = await db.pool.query("select state from punctual.jobs where id = $1", [job!.id]);
    expect(rows).toEqual([{ state: "succeeded" }]);
  });

  it("claims before it writes the successes: a success whose row another transaction holds locked does not hold the claim back", async () => {
    // Another worker's claim can hold a lock on a job this worker completes (see
    // jobCompleteAndClaim): the statement then waits for it, with its claim made and
    // leased already, not yet to be made on a snapshot that has grown stale meanwhile.
    await db.pool.query("truncate punctual.jobs");
    await createClient({ executor: db.pool }).enqueueMany([0, 1, 2, 3].map((n) => ({ task: noop, payload: { n } })));
    const q = toQueryable(db.pool, { prepared: true });
    const [done] = await jobClaim(q, params("w1", 1));
    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from punctual.jobs where id = $1 for update", [done!.id]);
      const statement = jobCompleteAndClaim(q, params("w1", 2), [success(Number(done!.id))]);
      // Until the statement waits for that lock.
      while ((await db.pool.query("select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")).rowCount === 0) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Its claim is made: the two jobs it took are locked; the one left is free.
      const { rows: free } = await db.pool.query(
        "select payload->>'n' as n from punctual.jobs where state = 'pending' order by id for update skip locked",
      );
      expect(free).toEqual([{ n: "3" }]);
      await holder.query("commit");
      const { completed, claimed } = await statement;
      expect(completed).toBe("all");
      expect(claimed.map((r) => (r.payload as { n: number }).n)).toEqual([1, 2]);
    } finally {
      await holder.query("rollback").catch(() => {});
      holder.release();
    }
  });
});

describe("retention 0: successes delete their rows", () => {
  it("a one-off success deletes its row, fenced on the lease and attempt; a batch with a periodic success is written as usual", async () => {
    await db.pool.query("truncate punctual.jobs");
    await createClient({ executor: db.pool }).enqueueMany([0, 1, 2, 3, 4].map((n) => ({ task: noop, payload: { n } })));
    const q = toQueryable(db.pool, { prepared: true });
    const [a, b, stale, c] = (await jobClaim(q, params("w1", 4))).map((r) => Number(r.id));
    const [theirs] = (await jobClaim(q, params("w2", 1))).map((r) => Number(r.id));

    // Another worker's job and a stale attempt are fenced out: not deleted.
    const { completed } = await jobCompleteAndClaim(q, params("w1", 1), [success(a!), success(theirs!), { ...success(stale!), attempt: 2 }], true);
    expect(completed).toEqual([{ id: a, attempt: 1 }]);
    expect(await jobCompleteMany(q, "w1", [success(b!)], true)).toMatchObject([{ id: b, attempt: 1, nextRunAt: null }]);
    // With a periodic success in the batch, every row is marked succeeded (the pruner deletes them).
    await db.pool.query("update punctual.jobs set every_ms = 60000 where id = $1", [c]);
    const periodic = { ...success(c!), every_ms: "60000", next_slot: new Date(Date.now() + 60_000) };
    expect((await jobCompleteMany(q, "w1", [periodic], true)).map((r) => r.id)).toEqual([c]);

    const { rows } = await db.pool.query("select id::int, state from punctual.jobs where id = any($1) order by id", [[a, b, stale, c, theirs]]);
    expect(rows).toEqual(
      [
        { id: stale, state: "running" },
        { id: c, state: "succeeded" },
        { id: theirs, state: "running" },
      ].sort((x, y) => x.id! - y.id!),
    );
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
    // Every success was recorded: the answer says so instead of listing them.
    expect(completed).toBe("all");
    const { rows } = await db.pool.query("select count(*)::int as n from punctual.jobs where state = 'succeeded'");
    expect(rows[0].n).toBe(3);
  });
});

describe("outcomes of two attempts of one job in one batch", () => {
  it("only the attempt that holds the lease is recorded; the stale one comes back lost, not succeeded", async () => {
    // A worker cut off from the database: attempt 1's lease ran out, the job was rescued,
    // and the same worker claimed it again (attempt 2). Both handlers finish together and
    // their successes meet in one batch.
    const punctual = createClient({ executor: db.pool });
    const [job] = await punctual.enqueueMany([{ task: noop, payload: { n: 1 } }]);
    const q = toQueryable(db.pool, { prepared: true });
    await db.pool.query("update punctual.jobs set state = 'running', locked_by = 'w1', attempts = 2, locked_until = now() + interval '1 minute' where id = $1", [job!.id]);

    const { completed } = await jobCompleteAndClaim(q, params("w1", 1), [success(job!.id), { ...success(job!.id), attempt: 2 }]);
    expect(completed).toEqual([{ id: job!.id, attempt: 2 }]);

    await db.pool.query("update punctual.jobs set state = 'running', locked_by = 'w1', attempts = 4, finished_at = null where id = $1", [job!.id]);
    const batcher = new OutcomeBatcher(q, "w1", (error) => {
      throw error;
    });
    const states = await Promise.all([batcher.success({ ...success(job!.id), attempt: 3 }), batcher.success({ ...success(job!.id), attempt: 4 })]);
    expect(states).toEqual(["lost", "succeeded"]);
    const failures = await Promise.all(
      [3, 4].map((attempt) =>
        batcher.failure({ ...success(job!.id), attempt, message: "x", stack: null, retry_delay_ms: 0, retryable: true }),
      ),
    );
    // The row is succeeded now: both failures are stale.
    expect(failures).toEqual(["lost", "lost"]);
  });

  it("a placement whose answer is lost is not sent again: it gave the attempt back, so it ends unrecorded", async () => {
    let sent = 0;
    class AnswerLosingPool extends pg.Pool {
      override query(...args: unknown[]): never {
        const [config, values] = args as [pg.QueryConfig, unknown[] | undefined];
        const ran = (super.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values);
        if (!config.text.includes("slot_at = p.slot")) return ran as never;
        sent += 1;
        return ran.then(() => Promise.reject(new Error("Connection terminated unexpectedly"))) as never;
      }
    }
    const pool = new AnswerLosingPool({ connectionString: db.url, max: 2 });
    try {
      const punctual = createClient({ executor: db.pool });
      const [job] = await punctual.enqueueMany([{ task: noop, payload: { n: 2 } }]);
      await db.pool.query("update punctual.jobs set state = 'running', locked_by = 'w1', attempts = 1, locked_until = now() + interval '1 minute' where id = $1", [job!.id]);
      const batcher = new OutcomeBatcher(toQueryable(pool, { prepared: true }), "w1", () => {}, 10);
      const slot = new Date(Date.now() + 60_000);
      expect(await batcher.place({ id: job!.id, attempt: 1, slot })).toBe("unrecorded");
      expect(sent).toBe(1);
      // It did commit: the row waits on its slot, its attempt given back.
      const { rows } = await db.pool.query("select state, attempts from punctual.jobs where id = $1", [job!.id]);
      expect(rows[0]).toEqual({ state: "pending", attempts: 0 });
    } finally {
      await pool.end();
    }
  });
});
