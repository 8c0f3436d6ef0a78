import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { spawnTs } from "../support/spawn.js";
import { steady, stubborn } from "../fixtures/drain-tasks.js";

let db: TestDatabase;
let punctual: Client;
beforeAll(async () => {
  db = await createTestDatabase();
  punctual = createClient({ executor: db.pool });
});
afterAll(() => db.drop());

function startCli(shutdownTimeoutMs: number) {
  return spawnTs(
    "src/cli/main.ts",
    ["worker", "--tasks", "test/fixtures/drain-tasks.ts", "--poll-interval", "50", "--shutdown-timeout", String(shutdownTimeoutMs)],
    { DATABASE_URL: db.url },
  );
}

describe("punctual worker on SIGTERM", () => {
  it("lets running jobs finish, claims nothing new, and exits 0", async () => {
    const cli = startCli(60_000);
    await cli.logLine((l) => l.msg === "worker started");
    let started = 0;
    const bothStarted = cli.logLine((l) => l.msg === "steady started" && ++started === 2);
    const jobs = await punctual.enqueueMany([
      { task: steady, payload: { ms: 1000 } },
      { task: steady, payload: { ms: 1000 } },
    ]);
    await bothStarted;
    cli.child.kill("SIGTERM");
    await cli.logLine((l) => l.msg === "draining: no new jobs; waiting for running ones");
    const late = await punctual.enqueue(steady, { ms: 1 });
    expect(await cli.exit).toBe(0);
    for (const { id } of jobs) expect((await punctual.get(id))?.state).toBe("succeeded");
    expect(await punctual.get(late.id)).toMatchObject({ state: "pending", attempts: 0 });
  });

  it("hands a handler that outlives the timeout back to pending at once, and exits 0", async () => {
    const cli = startCli(200);
    await cli.logLine((l) => l.msg === "worker started");
    const { id } = await punctual.enqueue(stubborn, {});
    await cli.logLine((l) => l.msg === "stubborn started");
    cli.child.kill("SIGTERM");
    expect(await cli.exit).toBe(0);
    expect(await punctual.get(id)).toMatchObject({ state: "pending", attempts: 1, lockedBy: null });
    expect(cli.output()).toContain("handed unfinished jobs back to pending");
  });

  it("a second signal exits at once", async () => {
    const cli = startCli(60_000);
    await cli.logLine((l) => l.msg === "worker started");
    await punctual.enqueue(stubborn, {});
    await cli.logLine((l) => l.msg === "stubborn started");
    cli.child.kill("SIGTERM");
    await cli.logLine((l) => l.msg === "draining: no new jobs; waiting for running ones");
    cli.child.kill("SIGTERM");
    expect(await cli.exit).toBe(1);
  });
});
