import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { spawnTs } from "../support/spawn.js";
import { hello } from "../fixtures/cli-tasks.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
});
afterAll(() => db.drop());

describe("punctual CLI", () => {
  it("without a database URL, says so and exits 2", async () => {
    const run = spawnTs("src/cli/main.ts", ["migrate"], { DATABASE_URL: "" });
    expect(await run.exit).toBe(2);
    expect(run.output()).toContain("set DATABASE_URL");
  });

  it("migrate, then worker: runs the module's tasks and drains on SIGTERM with exit 0", async () => {
    const migrate = spawnTs("src/cli/main.ts", ["migrate"], { DATABASE_URL: db.url });
    expect(await migrate.exit).toBe(0);

    const worker = spawnTs(
      "src/cli/main.ts",
      ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--poll-interval", "20", "--concurrency", "3"],
      { DATABASE_URL: db.url },
    );
    const started = await worker.logLine((line) => line.msg === "worker started");
    expect(started).toMatchObject({ tasks: ["hello"], concurrency: 3 });

    const { id } = await createClient({ executor: db.pool }).enqueue(hello, { name: "CLI" });
    const greeted = await worker.logLine((line) => line.msg === "greeted");
    expect(greeted).toMatchObject({ job: id, greeting: "hello CLI" });
    await worker.logLine((line) => line.msg === "job succeeded" && line.job === id);

    worker.child.kill("SIGTERM");
    expect(await worker.exit).toBe(0);
    expect(worker.output()).toContain("worker stopped");
  });

  it("refuses a tasks module that exports no tasks", async () => {
    const run = spawnTs("src/cli/main.ts", ["worker", "--tasks", "test/support/urls.ts"], { DATABASE_URL: db.url });
    expect(await run.exit).toBe(1);
    expect(run.output()).toContain("exports no tasks");
  });
});
