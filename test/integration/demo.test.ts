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
  expect(demo.output()).toContain('"msg":"bye"');
  const { rows } = await db.pool.query("select task, key, state, attempts, payload from punctual.jobs order by id");
  expect(rows.filter((r) => r.state === "succeeded")).toHaveLength(6);
  expect(rows.find((r) => r.key === "notify:42")).toMatchObject({
    state: "succeeded",
    payload: { userId: "42", message: "Your report is ready (with charts)" },
  });
  expect(rows.find((r) => r.key === "notify:43")?.state).toBe("cancelled");
  expect(rows.find((r) => r.task === "deliver-webhook")).toMatchObject({ state: "succeeded", attempts: 2 });
});
