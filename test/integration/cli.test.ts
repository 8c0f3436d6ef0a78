import { writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { createClient } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { loadSecondZod } from "../support/second-zod.js";
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
      ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--poll-interval", "20", "--concurrency", "3", "--prefetch", "40"],
      { DATABASE_URL: db.url, LOG_LEVEL: "debug" }, // "job succeeded" is a debug line
    );
    const started = await worker.logLine((line) => line.msg === "worker started");
    expect(started).toMatchObject({ tasks: ["hello"], concurrency: 3, prefetch: 40 });

    const { id } = await createClient({ executor: db.pool }).enqueue(hello, { name: "CLI" });
    const greeted = await worker.logLine((line) => line.msg === "greeted");
    expect(greeted).toMatchObject({ job: id, greeting: "hello CLI" });
    await worker.logLine((line) => line.msg === "job succeeded" && line.job === id);

    worker.child.kill("SIGTERM");
    expect(await worker.exit).toBe(0);
    expect(worker.output()).toContain("worker stopped");
  });

  // Each spawns a process that exits at once: run them side by side.
  it.concurrent.for<[string, string[], RegExp]>([
    ["an unknown flag", ["worker", "--bogus"], /^punctual: unknown option --bogus \(see punctual --help\)$/],
    ["an unknown short flag", ["migrate", "-x"], /^punctual: unknown option -x \(see punctual --help\)$/],
    ["a flag without its value", ["worker", "--tasks", "t.ts", "--concurrency"], /^punctual: --concurrency needs a value \(see punctual --help\)$/],
    ["a flag whose value looks like a flag", ["worker", "--concurrency", "--poll-only"], /^punctual: --concurrency needs a value; got "--poll-only" \(write --concurrency=--poll-only if you mean it\) \(see punctual --help\)$/],
    ["a value given to a switch", ["worker", "--poll-only=yes"], /^punctual: --poll-only takes no value \(see punctual --help\)$/],
    ["an extra argument", ["migrate", "now"], /^punctual: unexpected argument "now" \(see punctual --help\)$/],
    ["a number flag that is not a number", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--concurrency", "abc"], /^punctual: --concurrency must be an integer; got "abc" \(see punctual --help\)$/],
    ["a negative prefetch", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--prefetch=-5"], /^punctual: --prefetch must be an integer of 0 or more; got "-5" \(see punctual --help\)$/],
    ["a number flag out of range", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--poll-interval", "1"], /^punctual: --poll-interval: .*>=10 \(see punctual --help\)$/],
    ["a bad duration", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--retention", "7 weeks"], /^punctual: --retention: must look like "500ms".* \(see punctual --help\)$/],
    ["a bad queue name", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--queues", "a,b c"], /^punctual: --queues: queue names are 1-64 letters.* \(see punctual --help\)$/],
    ["a negative shutdown timeout", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--shutdown-timeout=-5"], /^punctual: --shutdown-timeout must be an integer of 0 or more; got "-5" \(see punctual --help\)$/],
    ["a value given to --no-prepare", ["worker", "--no-prepare=yes"], /^punctual: --no-prepare takes no value \(see punctual --help\)$/],
    ["--migrate-url without its value", ["migrate", "--migrate-url"], /^punctual: --migrate-url needs a value \(see punctual --help\)$/],
    ["--migrate-url on a worker that does not --migrate", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--migrate-url", "postgres://a@b/c"], /^punctual: --migrate-url is only used with --migrate \(see punctual --help\)$/],
    // The value is not echoed: it may hold a password.
    ["a --migrate-url that is not a PostgreSQL URL", ["migrate", "--migrate-url", "mysql://u:secret@h/db"], /^punctual: --migrate-url must be a postgres:\/\/ or postgresql:\/\/ URL \(see punctual --help\)$/],
  ])("refuses %s with one line naming it, exit 2", async ([_what, args, message], { expect }) => {
    // A database that does not exist: a bad command line must be refused before any connection.
    const run = spawnTs("src/cli/main.ts", args, { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" });
    expect(await run.exit).toBe(2);
    expect(run.output().trim()).toMatch(message);
  });

  it("refuses a DATABASE_DIRECT_URL that is not a PostgreSQL URL when migrating, exit 2", async () => {
    const run = spawnTs("src/cli/main.ts", ["migrate"], { DATABASE_URL: db.url, DATABASE_DIRECT_URL: "127.0.0.1:5432/db" });
    expect(await run.exit).toBe(2);
    expect(run.output().trim()).toBe("punctual: DATABASE_DIRECT_URL must be a postgres:// or postgresql:// URL (see punctual --help)");
  });

  it("finds tasks whose payload schemas come from another copy of zod", async () => {
    const second = await loadSecondZod();
    onTestFinished(() => second.remove()); // even on a timeout
    const module = path.join(second.dir, "tasks.ts");
    const src = pathToFileURL(path.resolve("src/index.ts")).href;
    await writeFile(
      module,
      `import { z } from "./node_modules/zod/v3/index.js";
import { defineTask } from ${JSON.stringify(src)};
export const zod3Hello = defineTask({
  name: "zod3-hello",
  payload: z.object({ name: z.string() }),
  run: ({ name }, { logger }) => logger.info({ greeting: "hello " + name }, "greeted"),
});
`,
    );
    expect(await spawnTs("src/cli/main.ts", ["migrate"], { DATABASE_URL: db.url }).exit).toBe(0);
    const worker = spawnTs("src/cli/main.ts", ["worker", "--tasks", module, "--poll-interval", "20"], { DATABASE_URL: db.url });
    onTestFinished(() => void worker.child.kill("SIGKILL")); // a no-op once it exited
    // Should the worker exit instead (no tasks found), fail at once, showing why.
    const started = await Promise.race([
      worker.logLine((line) => line.msg === "worker started"),
      worker.exit.then((code) => ({ exited: code, output: worker.output() })),
    ]);
    expect(started).toMatchObject({ tasks: ["zod3-hello"] });
    const { zod3Hello } = await import(pathToFileURL(module).href);
    const { id } = await createClient({ executor: db.pool }).enqueue(zod3Hello, { name: "zod 3" });
    expect(await worker.logLine((line) => line.msg === "greeted")).toMatchObject({ job: id, greeting: "hello zod 3" });
    worker.child.kill("SIGTERM");
    expect(await worker.exit).toBe(0);
  });

  it("refuses a tasks module that exports no tasks", async () => {
    const run = spawnTs("src/cli/main.ts", ["worker", "--tasks", "test/support/urls.ts"], { DATABASE_URL: db.url });
    expect(await run.exit).toBe(1);
    expect(run.output()).toContain("exports no tasks");
  });
});
