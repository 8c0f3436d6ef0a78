import { afterAll, beforeAll, expect, it } from "vitest";
import { createClient } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { exited, forkFixture } from "../support/processes.js";
import { z } from "zod";
import { defineTask } from "../../src/index.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query("create table test_runs (job_id bigint not null, pid int not null)");
});
afterAll(() => db.drop());

// Only the name and schema matter to the producer; the workers hold the handler.
const record = defineTask({ name: "record", payload: z.object({ n: z.number() }), run: () => {} });

it("two worker processes share 2,000 jobs: every job runs exactly once and both do work", async () => {
  const children = [0, 1].map(() => forkFixture("worker-process.ts", { DATABASE_URL: db.url }));
  const succeeded = new Set<number>();
  let duplicateEvents = 0;
  const allDone = new Promise<void>((resolve) => {
    for (const child of children) {
      child.on("message", (message: { type: string; id?: number }) => {
        if (message.type !== "succeeded") return;
        if (succeeded.has(message.id!)) duplicateEvents += 1;
        succeeded.add(message.id!);
        if (succeeded.size === 2000) resolve();
      });
    }
  });
  await Promise.all(
    children.map((child) => new Promise<void>((resolve) => child.once("message", () => resolve()))),
  );

  const punctual = createClient({ executor: db.pool });
  for (let batch = 0; batch < 4; batch++) {
    await punctual.enqueueMany(Array.from({ length: 500 }, (_, i) => ({ task: record, payload: { n: batch * 500 + i } })));
  }
  await allDone;
  for (const child of children) child.send({ type: "stop" });
  expect(await Promise.all(children.map(exited))).toEqual([0, 0]);

  const { rows } = await db.pool.query(`
    select count(*)::int as runs, count(distinct job_id)::int as jobs,
           array_agg(distinct pid) as pids,
           (select count(*)::int from punctual.jobs where state = 'succeeded' and attempts = 1) as succeeded
    from test_runs`);
  expect(rows[0].runs).toBe(2000);
  expect(rows[0].jobs).toBe(2000);
  expect(rows[0].succeeded).toBe(2000);
  expect(duplicateEvents).toBe(0);
  expect(rows[0].pids.sort()).toEqual(children.map((c) => c.pid).sort());
});
