import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { spawnTs } from "../support/spawn.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
});
afterAll(() => db.drop());

it("the demo (npm start) migrates, runs its jobs to the end and stops cleanly", async () => {
  const demo = spawnTs("examples/demo/main.ts", ["--exit-when-done"], { DATABASE_URL: db.url });
  expect(await demo.exit).toBe(0);
  expect(demo.output()).toContain('"msg":"database stopped; bye"');
  const { rows } = await db.pool.query(
    "select task, key, state, attempts, payload, cron, every_ms, tz from punctual.jobs order by id",
  );
  const oneOff = rows.filter((r) => r.cron === null && r.every_ms === null);
  expect(oneOff.filter((r) => r.state === "succeeded")).toHaveLength(6);
  const live = rows.filter((r) => r.state === "pending" && (r.cron || r.every_ms));
  expect(live.map((r) => r.key).sort()).toEqual(["check-expired-trials", "todo-email:42", "todo-email:43", "todo-email:44"]);
  expect(rows.find((r) => r.key === "notify:42")).toMatchObject({
    state: "succeeded",
    payload: { userId: "42", message: "Your report is ready (with charts)" },
  });
  expect(rows.find((r) => r.key === "notify:43")?.state).toBe("cancelled");
  expect(rows.find((r) => r.task === "deliver-webhook")).toMatchObject({ state: "succeeded", attempts: 2 });
});
