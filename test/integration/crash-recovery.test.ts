import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { createClient, createWorker, defineTask } from "../../src/index.js";
import { jobCompleteMany, jobFailMany } from "../../src/sql/jobs.js";
import { toQueryable } from "../../src/executor.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { collect } from "../support/events.js";
import { exited, forkFixture } from "../support/processes.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

it("SIGKILL mid-job: another worker re-runs every job after the lease expires; the dead worker's late outcome changes nothing", async () => {
  const hang = defineTask({ name: "hang", payload: z.object({ n: z.number() }), run: () => {} });
  const doomed = forkFixture("crash-worker.ts", { DATABASE_URL: db.url, WORKER_ID: "doomed-worker" });
  await new Promise<void>((resolve) => doomed.once("message", () => resolve()));
  const started = new Set<number>();
  const allStarted = new Promise<void>((resolve) =>
    doomed.on("message", (m: { type: string; id: number }) => {
      if (m.type === "started") started.add(m.id);
      if (started.size === 5) resolve();
    }),
  );
  const jobs = await createClient({ executor: db.pool }).enqueueMany(
    Array.from({ length: 5 }, (_, n) => ({ task: hang, payload: { n } })),
  );
  await allStarted;
  doomed.kill("SIGKILL");
  expect(await exited(doomed)).toBe("SIGKILL");

  // The survivor runs the same task name with a handler that finishes.
  const survivor = createWorker({
    connectionString: db.url,
    tasks: [hang],
    rescueIntervalMs: 100,
    pollIntervalMs: 50,
    logger: pino({ level: "silent" }),
  });
  const rescued = collect(survivor, "job:rescued", 5);
  const succeeded = collect(survivor, "job:succeeded", 5);
  await survivor.start();
  expect((await rescued).map(([r]) => r.previousOwner)).toEqual(Array(5).fill("doomed-worker"));
  expect((await succeeded).map(([j]) => j.id).sort()).toEqual(jobs.map((j) => j.id).sort());
  await survivor.stop();

  const { rows } = await db.pool.query("select id, state, attempts, last_error, locked_by from punctual.jobs order by id");
  expect(rows.every((r) => r.state === "succeeded" && r.attempts === 2 && r.locked_by === null)).toBe(true);
  expect(rows[0].last_error).toBe("lease expired: worker doomed-worker stopped renewing it");

  // The killed worker's completions, arriving late: fenced on locked_by, they change nothing.
  const q = toQueryable(db.pool);
  const none = { next_slot: null, cron: null, tz: null, every_ms: null, fixed_delay: false };
  expect(await jobCompleteMany(q, "doomed-worker", jobs.map((j) => ({ id: j.id, attempt: 1, ...none })))).toEqual([]);
  expect(
    await jobFailMany(q, "doomed-worker", jobs.map((j) => ({ id: j.id, attempt: 1, message: "late", stack: null, retry_delay_ms: 0, retryable: true, ...none }))),
  ).toEqual([]);
  const { rows: after } = await db.pool.query("select id, state, attempts, last_error, locked_by from punctual.jobs order by id");
  expect(after).toEqual(rows);
});
