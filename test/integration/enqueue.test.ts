import { drizzle } from "drizzle-orm/node-postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { noop, sendEmail } from "../fixtures/tasks.js";

let db: TestDatabase;
let punctual: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  punctual = createClient({ executor: db.pool, tasks: [noop, sendEmail] });
});
afterAll(() => db.drop());
beforeEach(() => db.pool.query("truncate punctual.jobs"));

const countJobs = async () => Number((await db.pool.query("select count(*) from punctual.jobs")).rows[0].count);

describe("transactional enqueue", () => {
  it("through a pg client: visible after commit, absent after rollback", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      const { id } = await punctual.enqueue(noop, {}, { executor: client, key: "committed" });
      expect(await countJobs()).toBe(0); // another connection cannot see it yet
      await client.query("commit");
      expect((await punctual.get(id))?.key).toBe("committed");

      await client.query("begin");
      await punctual.enqueue(noop, {}, { executor: client, key: "rolled-back" });
      await client.query("rollback");
      expect(await punctual.get("rolled-back")).toBeNull();
      expect(await countJobs()).toBe(1);
    } finally {
      client.release();
    }
  });

  it("through a drizzle transaction: visible after commit, absent after rollback", async () => {
    const orm = drizzle({ client: db.pool });
    await orm.transaction(async (tx) => {
      await punctual.enqueue(sendEmail, { to: "a@example.com" }, { executor: tx, key: "drizzle-commit" });
      expect(await countJobs()).toBe(0);
    });
    expect((await punctual.get("drizzle-commit"))?.payload).toEqual({ to: "a@example.com" });

    await expect(
      orm.transaction(async (tx) => {
        await punctual.enqueueMany(
          [
            { task: noop, payload: {}, key: "drizzle-rollback-1" },
            { task: noop, payload: {}, key: "drizzle-rollback-2" },
          ],
          { executor: tx },
        );
        throw new Error("the app changed its mind");
      }),
    ).rejects.toThrow("the app changed its mind");
    expect(await punctual.get("drizzle-rollback-1")).toBeNull();
    expect(await countJobs()).toBe(1);
  });

  it("through a drizzle database outside a transaction", async () => {
    const orm = drizzle({ client: db.pool });
    const result = await punctual.enqueue(noop, { n: 1 }, { executor: orm });
    expect(result.outcome).toBe("inserted");
    expect((await punctual.get(result.id, { executor: orm }))?.payload).toEqual({ n: 1 });
  });
});

describe("job keys", () => {
  it("replace (the default) gives a pending job the new payload and run_at", async () => {
    const first = await punctual.enqueue(sendEmail, { to: "old@example.com" }, { key: "notify:1", delay: "10m" });
    const runAt = new Date(Date.now() + 3_600_000);
    const second = await punctual.enqueue(sendEmail, { to: "new@example.com" }, { key: "notify:1", runAt });
    expect(first.outcome).toBe("inserted");
    expect(second).toMatchObject({ id: first.id, outcome: "replaced" });
    const job = await punctual.get("notify:1");
    expect(job?.payload).toEqual({ to: "new@example.com" });
    expect(job?.runAt.getTime()).toBe(runAt.getTime());
    expect(await countJobs()).toBe(1);
  });

  it("keep leaves the pending job as it was", async () => {
    await punctual.enqueue(sendEmail, { to: "first@example.com" }, { key: "dedupe" });
    const kept = await punctual.enqueue(sendEmail, { to: "second@example.com" }, { key: "dedupe", onConflict: "keep" });
    expect(kept.outcome).toBe("kept");
    expect((await punctual.get("dedupe"))?.payload).toEqual({ to: "first@example.com" });
    expect(await countJobs()).toBe(1);
  });

  it("a running job is never changed: replace reports it kept", async () => {
    const { id } = await punctual.enqueue(noop, { n: 1 }, { key: "busy" });
    await db.pool.query("update punctual.jobs set state = 'running', locked_by = 'someone' where id = $1", [id]);
    const result = await punctual.enqueue(noop, { n: 2 }, { key: "busy" });
    expect(result).toMatchObject({ id, outcome: "kept", state: "running" });
    expect((await punctual.get(id))?.payload).toEqual({ n: 1 });
  });

  it("cancel by key cancels the pending job; the key is then free", async () => {
    const { id } = await punctual.enqueue(noop, {}, { key: "cancel-me", delay: "1h" });
    expect(await punctual.cancel("cancel-me")).toEqual({ id, state: "cancelled" });
    expect(await punctual.cancel("cancel-me")).toBeNull();
    const again = await punctual.enqueue(noop, {}, { key: "cancel-me" });
    expect(again.outcome).toBe("inserted");
    expect(again.id).not.toBe(id);
    expect((await punctual.get(id))?.state).toBe("cancelled");
  });

  it("a key is free again once its job finished", async () => {
    const { id } = await punctual.enqueue(noop, {}, { key: "once" });
    await db.pool.query("update punctual.jobs set state = 'succeeded', finished_at = now() where id = $1", [id]);
    expect((await punctual.get("once"))?.state).toBe("succeeded");
    const next = await punctual.enqueue(noop, {}, { key: "once", onConflict: "keep" });
    expect(next.outcome).toBe("inserted");
    expect((await punctual.get("once"))?.id).toBe(next.id); // get(key) prefers the live job
  });

  it("concurrent enqueues of one key leave exactly one live job", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => punctual.enqueue(noop, { n }, { key: "race", onConflict: n % 2 ? "keep" : "replace" })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => r.outcome === "inserted")).toHaveLength(1);
    expect(await countJobs()).toBe(1);
  });
});

describe("batch enqueue", () => {
  it("writes many jobs in one call and reports each in input order", async () => {
    await punctual.enqueue(noop, { n: -1 }, { key: "existing" });
    const specs = Array.from({ length: 500 }, (_, n) => ({ task: noop, payload: { n } }));
    const results = await punctual.enqueueMany([...specs, { task: "noop", payload: { n: 500 }, key: "existing" }]);
    expect(results).toHaveLength(501);
    expect(results.slice(0, 500).every((r) => r.outcome === "inserted")).toBe(true);
    expect(results[500]!.outcome).toBe("replaced");
    const { rows } = await db.pool.query("select id, payload from punctual.jobs where key is null order by id");
    expect(rows.map((r) => r.payload.n)).toEqual(specs.map((s) => s.payload.n));
    expect(rows.map((r) => Number(r.id))).toEqual(results.slice(0, 500).map((r) => r.id));
  });

  it("a batch without keys (a plain insert): each result is its own row, in input order, run_at as written", async () => {
    await db.pool.query("truncate punctual.jobs");
    const base = Date.parse("2031-01-01T00:00:00.000Z");
    // Due times out of order, some absent (now), so input order is not id order by accident of run_at.
    const specs = Array.from({ length: 300 }, (_, n) => ({
      task: noop,
      payload: { n },
      ...(n % 3 === 0 ? {} : { runAt: new Date(base + ((n * 7919) % 300) * 1000 + 123) }),
      priority: (n % 21) - 10,
    }));
    const results = await punctual.enqueueMany(specs);
    const { rows } = await db.pool.query("select id, payload, run_at, priority, key, state from punctual.jobs order by id");
    expect(rows.map((r) => r.payload.n)).toEqual(specs.map((s) => s.payload.n));
    expect(results).toEqual(
      rows.map((r) => ({ id: Number(r.id), key: null, state: "pending", runAt: r.run_at, outcome: "inserted" })),
    );
    expect(rows.map((r) => r.priority)).toEqual(specs.map((s) => s.priority));
    specs.forEach((s, i) => s.runAt && expect(results[i]!.runAt).toEqual(s.runAt));
  });
});

describe("enqueue from SQL", () => {
  it("punctual.enqueue inserts a job with the same key semantics", async () => {
    const { rows } = await db.pool.query(
      `select punctual.enqueue('send-email', '{"to": "sql@example.com"}', now() + interval '1 hour', key => 'sql:1') as id`,
    );
    const id = Number(rows[0].id);
    const job = await punctual.get("sql:1");
    expect(job).toMatchObject({ id, task: "send-email", state: "pending", payload: { to: "sql@example.com" } });

    await db.pool.query(`select punctual.enqueue('send-email', '{"to": "kept@example.com"}', key => 'sql:1', on_conflict => 'keep')`);
    expect((await punctual.get("sql:1"))?.payload).toEqual({ to: "sql@example.com" });
    await db.pool.query(`select punctual.enqueue('send-email', '{"to": "replaced@example.com"}', key => 'sql:1')`);
    expect((await punctual.get("sql:1"))?.payload).toEqual({ to: "replaced@example.com" });
    expect(await countJobs()).toBe(1);
  });

  it("refuses a bad on_conflict and an oversized payload, writing nothing", async () => {
    await expect(db.pool.query(`select punctual.enqueue('noop', '{}', on_conflict => 'merge')`)).rejects.toThrow(/on_conflict/);
    await expect(
      db.pool.query(`select punctual.enqueue('noop', jsonb_build_object('blob', repeat('x', 1100000)))`),
    ).rejects.toThrow(/larger than 1 MiB/);
    expect(await countJobs()).toBe(0);
  });
});
