/**
 * Group commit of single enqueues on a pool (src/enqueue-coalescer.ts): calls made
 * while others are on their way share a statement and a commit, and each caller still
 * gets exactly what a call alone would have given it. Which calls shared a commit is
 * read from the rows themselves: rows written by one transaction share its `xmin`.
 */
import pg from "pg";
import { z } from "zod";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createClient, defineTask, type Client, type EnqueueResult } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { GatedPool } from "../support/gated-pool.js";

const note = defineTask({ name: "note", payload: z.object({ n: z.number() }), run: () => {} });

let db: TestDatabase;
let punctual: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  punctual = createClient({ executor: db.pool, tasks: [note] });
});
afterAll(async () => {
  await db?.drop();
});
beforeEach(async () => {
  await db.pool.query("truncate punctual.jobs");
});

/** How many transactions wrote the jobs now in the table. */
async function commits(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>("select count(distinct xmin::text)::int as n from punctual.jobs");
  return rows[0]!.n;
}

const payloads = async () =>
  (await db.pool.query<{ payload: { n: number } }>("select payload from punctual.jobs order by id")).rows.map((r) => r.payload.n);

describe("single enqueues on a pool", () => {
  it("called together, they share commits, and each call gets its own job", async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, n) => punctual.enqueue(note, { n })));

    expect(new Set(results.map((r) => r.id)).size).toBe(50);
    expect(results.every((r) => r.outcome === "inserted" && r.state === "pending")).toBe(true);
    // Each result names its own row.
    const { rows } = await db.pool.query<{ id: string; n: number }>("select id, (payload->>'n')::int as n from punctual.jobs");
    const byId = new Map(rows.map((r) => [Number(r.id), r.n]));
    results.forEach((r, n) => expect(byId.get(r.id)).toBe(n));
    // Two went at once, alone; the 48 called meanwhile went together.
    expect(await commits()).toBeLessThanOrEqual(3);
  });

  it("a call alone is written alone, at once", async () => {
    const first = await punctual.enqueue(note, { n: 1 });
    const second = await punctual.enqueue(note, { n: 2 });
    expect([first.outcome, second.outcome]).toEqual(["inserted", "inserted"]);
    expect(await commits()).toBe(2);
  });

  it("calls with one key take effect in call order, exactly as when made one after the other", async () => {
    const calls = (key: string) =>
      [
        [{ n: 1 }, { key }],
        [{ n: 2 }, { key }], // replace (the default)
        [{ n: 3 }, { key, onConflict: "keep" as const }],
        [{ n: 4 }, { key, delay: "1h" }],
      ] as const;
    const seqResults: EnqueueResult[] = [];
    for (const [payload, options] of calls("one-by-one")) seqResults.push(await punctual.enqueue(note, payload, options));

    // Together, with unkeyed calls between them so that they would share statements.
    const together = await Promise.all(
      calls("together").flatMap(([payload, options], i) => [
        punctual.enqueue(note, payload, options),
        punctual.enqueue(note, { n: 100 + i }),
      ]),
    );
    const keyed = together.filter((_, i) => i % 2 === 0);

    expect(keyed.map((r) => r.outcome)).toEqual(seqResults.map((r) => r.outcome));
    expect(keyed.map((r) => r.outcome)).toEqual(["inserted", "replaced", "kept", "replaced"]);
    const [seqJob, togetherJob] = await Promise.all([punctual.get("one-by-one"), punctual.get("together")]);
    expect(togetherJob?.payload).toEqual(seqJob?.payload);
    expect(togetherJob?.payload).toEqual({ n: 4 });
    expect(togetherJob!.runAt.getTime() - Date.now()).toBeGreaterThan(50 * 60_000);
    // One live row per key, and every unkeyed call wrote its own.
    const { rows } = await db.pool.query<{ key: string | null; n: number }>(
      "select key, count(*)::int as n from punctual.jobs group by key order by key nulls last",
    );
    expect(rows).toEqual([
      { key: "one-by-one", n: 1 },
      { key: "together", n: 1 },
      { key: null, n: 4 },
    ]);
  });

  it("a call whose key is in a statement not yet answered waits for that answer (two in flight may commit in either order)", async () => {
    const pool = new GatedPool({ connectionString: db.url, max: 4 });
    const client = createClient({ executor: pool, tasks: [note] });
    try {
      // The first write of the key is held on its way; the second call comes meanwhile.
      let held = false;
      const first = pool.gate((_text, name) => name === "punctual_enqueue_one" && !held && (held = true));
      const later = pool.gate((_text, name) => name === "punctual_enqueue_one" && held);
      later.open(); // counted, not held
      const one = client.enqueue(note, { n: 1 }, { key: "k" });
      await first.reached;
      const two = client.enqueue(note, { n: 2 }, { key: "k" });
      // Unkeyed calls are not held back by it.
      expect((await client.enqueue(note, { n: 3 })).outcome).toBe("inserted");
      await db.pool.query("select 1");
      expect(later.count).toBe(1); // only the unkeyed call was sent
      first.open();
      expect([(await one).outcome, (await two).outcome]).toEqual(["inserted", "replaced"]);
      expect((await punctual.get("k"))?.payload).toEqual({ n: 2 });
    } finally {
      await pool.end();
    }
  });

  it("a job the database refuses fails alone; the calls that shared its statement are written", async () => {
    // A rule of the app's own that the client cannot know: the database refuses n = 13.
    await db.pool.query(`alter table punctual.jobs add constraint app_no_13 check (payload->>'n' is distinct from '13')`);
    try {
      const settled = await Promise.allSettled([1, 2, 3, 13, 4, 5].map((n) => punctual.enqueue(note, { n })));

      expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
      expect((settled[3] as PromiseRejectedResult).reason).toMatchObject({ code: "23514", constraint: "app_no_13" });
      expect((await payloads()).sort()).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await db.pool.query("alter table punctual.jobs drop constraint app_no_13");
    }
  });

  it("a call in the caller's transaction is never grouped with the pool's: its rollback takes only its own job", async () => {
    const tx = await db.pool.connect();
    try {
      await tx.query("begin");
      const calls = [
        punctual.enqueue(note, { n: 1 }),
        punctual.enqueue(note, { n: 2 }),
        punctual.enqueue(note, { n: 3 }),
        punctual.enqueue(note, { n: 99 }, { executor: tx }),
        punctual.enqueue(note, { n: 4 }),
      ];
      await Promise.all(calls);
      await tx.query("rollback");
    } finally {
      tx.release();
    }
    expect((await payloads()).sort()).toEqual([1, 2, 3, 4]);
  });

  it("close() waits for the enqueues already called", async () => {
    const own = createClient({ connectionString: db.url, tasks: [note] });
    const calls = Array.from({ length: 20 }, (_, n) => own.enqueue(note, { n }));
    await own.close();

    const results = await Promise.all(calls);
    expect(results.every((r) => r.outcome === "inserted")).toBe(true);
    expect((await payloads()).length).toBe(20);
  });

  it("on one connection (not a pool), each call is its own statement", async () => {
    const connection = new pg.Client({ connectionString: db.url });
    await connection.connect();
    try {
      const single = createClient({ executor: connection, tasks: [note] });
      await Promise.all(Array.from({ length: 5 }, (_, n) => single.enqueue(note, { n })));
    } finally {
      await connection.end();
    }
    expect(await commits()).toBe(5);
  });
});
