import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClient, defineTask, upcomingSlots, ValidationError, type Client } from "../../src/index.js";
import { drain, DrainLimitError, expectEnqueued, listEnqueued, runJob } from "../../src/testing/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { demoTests } from "../../examples/demo/demo.spec.js";

let db: TestDatabase;
let punctual: Client;
beforeAll(async () => {
  db = await createTestDatabase();
  punctual = createClient({ executor: db.pool });
});
afterAll(() => db.drop());
beforeEach(() => db.pool.query("truncate punctual.jobs"));

/** What handlers saw, per test. */
let seen: { task: string; payload: unknown; attempt: number; slot: Date | null; late: boolean }[] = [];
beforeEach(() => {
  seen = [];
});

const sendEmail = defineTask({
  name: "send-email",
  payload: z.object({ to: z.email(), subject: z.string(), tags: z.array(z.string()).default([]) }),
  run: (payload, { job }) => {
    seen.push({ task: job.task, payload, attempt: job.attempt, slot: job.slot, late: job.late });
    return { sent: payload.to };
  },
});

/** Fails until its `failures` attempts have failed; `maxAttempts` 3. */
const flaky = defineTask({
  name: "flaky",
  payload: z.object({ failures: z.number().int() }),
  maxAttempts: 3,
  run: ({ failures }, { job }) => {
    seen.push({ task: job.task, payload: { failures }, attempt: job.attempt, slot: job.slot, late: job.late });
    if (job.attempt <= failures) throw new Error(`attempt ${job.attempt} failed`);
  },
});

const digest = defineTask({
  name: "digest",
  payload: z.object({ userId: z.number() }),
  run: (payload, { job }) => {
    seen.push({ task: job.task, payload, attempt: job.attempt, slot: job.slot, late: job.late });
  },
});

/** Enqueues a `send-email` for each address: a job that makes more jobs. */
const fanOut = defineTask({
  name: "fan-out",
  payload: z.object({ to: z.array(z.string()) }),
  run: async ({ to }) => {
    await punctual.enqueueMany(to.map((address) => ({ task: sendEmail, payload: { to: address, subject: "fan" } })));
  },
});

const allTasks = [sendEmail, flaky, digest, fanOut];

/** The message of the error `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => expect.unreachable("expected a failure"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return (error as Error).message;
}

describe("expectEnqueued", () => {
  it("passes on a deep partial match and returns the matching jobs", async () => {
    await punctual.enqueue(sendEmail, { to: "ada@example.com", subject: "Welcome", tags: ["new", "eu"] }, { key: "welcome:ada", delay: "10m" });
    const [job] = await expectEnqueued(db.pool, sendEmail, { to: "ada@example.com", tags: ["new", expect.any(String)] });
    expect(job).toMatchObject({ task: "send-email", key: "welcome:ada", state: "pending", attempts: 0 });
    await expectEnqueued(db.pool, sendEmail, { subject: /^Wel/ }, { key: "welcome:ada", queue: "default", delay: { min: "9m", max: "10m" }, count: 1 });
    await expectEnqueued(db.pool, sendEmail, (payload) => payload.to.endsWith("@example.com"));
    await expectEnqueued(db.pool, "send-email", (payload) => JSON.stringify(payload).includes("ada"));
    await expectEnqueued(db.pool, sendEmail, { to: expect.stringContaining("ada") });
    await expectEnqueued(db.pool, sendEmail, undefined, { runAt: { min: new Date(), max: new Date(Date.now() + 600_000) } });
    await expectEnqueued(db.pool, digest, undefined, { count: 0 });
  });

  it("fails with what was enqueued for the task instead, payloads printed, and the first difference of each", async () => {
    await punctual.enqueue(sendEmail, { to: "bob@example.com", subject: "Welcome" }, { key: "welcome:bob" });
    await punctual.enqueue(sendEmail, { to: "ada@example.com", subject: "Invoice" });
    const message = await failure(expectEnqueued(db.pool, sendEmail, { to: "ada@example.com", subject: "Welcome" }));
    expect(message).toContain('expected a pending job of task "send-email" with\n  payload matching {\n    "to": "ada@example.com",\n    "subject": "Welcome"\n  }\nbut found none.');
    expect(message).toContain('Pending jobs of task "send-email" (2):');
    expect(message).toMatch(/#\d+ {2}pending {2}key "welcome:bob" {2}queue "default" {2}priority 0 {2}run_at \S+ \(now\)/);
    expect(message).toContain('    payload: {\n      "to": "bob@example.com",\n      "subject": "Welcome"\n    }');
    expect(message).toContain('differs: payload.to: expected "ada@example.com", got "bob@example.com"');
    expect(message).toContain('differs: payload.subject: expected "Welcome", got "Invoice"');
  });

  it("names the option that differs, and says when the task has no jobs at all", async () => {
    await punctual.enqueue(sendEmail, { to: "ada@example.com", subject: "Welcome" }, { key: "welcome:ada", delay: "1h" });
    expect(await failure(expectEnqueued(db.pool, sendEmail, { to: "ada@example.com" }, { key: "welcome:bob" }))).toContain(
      'differs: key: expected "welcome:bob", got "welcome:ada"',
    );
    expect(await failure(expectEnqueued(db.pool, sendEmail, undefined, { delay: { max: "10m" } }))).toMatch(
      /differs: delay: expected due at most 10m from now, got due in (59\.\dm|60m|1h)$/m,
    );
    expect(await failure(expectEnqueued(db.pool, sendEmail, (p) => p.subject === "Bye"))).toContain(
      "differs: payload: the predicate returned false",
    );
    const none = await failure(expectEnqueued(db.pool, digest, { userId: 1 }));
    expect(none).toContain('There are no pending jobs of task "digest"; pending jobs by task: "send-email" (1).');
  });

  it("with a count, says how many it found, and with count 0 lists the jobs that should not be there", async () => {
    await punctual.enqueueMany([
      { task: sendEmail, payload: { to: "a@example.com", subject: "x" } },
      { task: sendEmail, payload: { to: "b@example.com", subject: "x" } },
    ]);
    expect(await failure(expectEnqueued(db.pool, sendEmail, { subject: "x" }, { count: 1 }))).toContain(
      'expected exactly 1 pending job(s) of task "send-email" with\n  payload matching {\n    "subject": "x"\n  }\nbut found 2.',
    );
    const unwanted = await failure(expectEnqueued(db.pool, sendEmail, { to: "b@example.com" }, { count: 0 }));
    expect(unwanted).toContain('expected no pending job of task "send-email" with');
    expect(unwanted).toContain("but found 1:");
    expect(unwanted).toContain('"to": "b@example.com"');
    expect(unwanted).not.toContain('"to": "a@example.com"');
  });

  it("is an AssertionError, and sees jobs in the caller's open transaction", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      await punctual.enqueue(sendEmail, { to: "tx@example.com", subject: "in a transaction" }, { executor: client });
      await expectEnqueued(client, sendEmail, { to: "tx@example.com" });
      const error = await expectEnqueued(db.pool, sendEmail, { to: "tx@example.com" }).catch((e: unknown) => e);
      expect((error as Error).name).toBe("AssertionError");
      expect((error as Error).message).toContain("There are no pending jobs at all.");
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("looks at other states when asked, and refuses an unknown one", async () => {
    const { id } = await punctual.enqueue(sendEmail, { to: "ada@example.com", subject: "x" }, { key: "k" });
    await punctual.cancel("k");
    await expectEnqueued(db.pool, sendEmail, undefined, { count: 0 });
    const [job] = await expectEnqueued(db.pool, sendEmail, { to: "ada@example.com" }, { state: "cancelled" });
    expect(job!.id).toBe(id);
    await expectEnqueued(db.pool, sendEmail, undefined, { state: "any", count: 1 });
    await expect(expectEnqueued(db.pool, sendEmail, undefined, { state: "done" as never })).rejects.toThrow(ValidationError);
  });
});

describe("listEnqueued", () => {
  it("lists pending jobs by task, queue and key, in insertion order, with their rule and slot", async () => {
    await punctual.enqueue(sendEmail, { to: "a@example.com", subject: "1" }, { queue: "mail" });
    await punctual.enqueue(sendEmail, { to: "b@example.com", subject: "2" }, { key: "b" });
    await punctual.enqueue(digest, { userId: 1 });
    const rule = { cron: "0 8 * * *", tz: "Europe/Paris" };
    await punctual.schedule("digest:7", digest, { userId: 7 }, rule);
    expect((await listEnqueued(db.pool, { task: sendEmail })).map((j) => j.payload)).toEqual([
      { to: "a@example.com", subject: "1" },
      { to: "b@example.com", subject: "2" },
    ]);
    expect((await listEnqueued(db.pool, { queue: "mail" })).map((j) => j.queue)).toEqual(["mail"]);
    expect((await listEnqueued(db.pool, { key: "b" })).map((j) => j.key)).toEqual(["b"]);
    const [schedule] = await listEnqueued(db.pool, { key: "digest:7" });
    expect(schedule).toMatchObject({ cron: "0 8 * * *", tz: "Europe/Paris", everyMs: null, slotAt: upcomingSlots(rule, new Date(), 1)[0] });
    expect(await listEnqueued(db.pool)).toHaveLength(4);
  });
});

describe("runJob", () => {
  it("runs the handler with the schema's output after a JSON round trip, and a full ctx", async () => {
    let ctxSeen: Record<string, unknown> = {};
    const inspect = defineTask({
      name: "inspect",
      payload: z.object({ at: z.coerce.date(), n: z.number().default(1) }),
      queue: "slow",
      maxAttempts: 2,
      run: (payload, ctx) => {
        ctxSeen = { payload, job: ctx.job, aborted: ctx.signal.aborted, logs: typeof ctx.logger.info, complete: typeof ctx.complete };
        return payload.n * 2;
      },
    });
    const at = new Date("2030-01-01T08:00:00Z");
    expect(await runJob(inspect, { at })).toBe(2);
    expect(ctxSeen).toEqual({
      payload: { at, n: 1 },
      job: expect.objectContaining({ id: 0, task: "inspect", queue: "slow", key: null, priority: 0, attempt: 1, maxAttempts: 2, slot: null, late: false }),
      aborted: false,
      logs: "function",
      complete: "function",
    });
    await runJob(inspect, { at, n: 3 }, { job: { attempt: 2, key: "k" } });
    expect(ctxSeen.job).toMatchObject({ attempt: 2, key: "k" });
  });

  it("refuses a bad payload as enqueue would, naming the field, and throws what the handler throws", async () => {
    const error = await runJob(sendEmail, { to: "not-an-email", subject: "x" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe("payload.to");
    expect(seen).toEqual([]);
    await expect(runJob(flaky, { failures: 1 })).rejects.toThrow("attempt 1 failed");
    await expect(runJob(flaky, { failures: 1 }, { job: { attempt: 2 } })).resolves.toBeUndefined();
  });

  it("gives ctx.complete(tx) that runs on the handler's transaction", async () => {
    const recordInvoice = defineTask({
      name: "record-invoice",
      payload: z.object({ orderId: z.number() }),
      run: async ({ orderId }, ctx) => {
        const client = await db.pool.connect();
        try {
          await client.query("begin");
          await client.query("create temporary table if not exists invoices (order_id int) on commit drop");
          await client.query("insert into invoices values ($1)", [orderId]);
          await ctx.complete(client);
          await client.query("commit");
        } finally {
          client.release();
        }
        return "done";
      },
    });
    expect(await runJob(recordInvoice, { orderId: 1 })).toBe("done");
  });
});

describe("drain", () => {
  it("runs due jobs with a real worker, leaves future ones, and reports what ran", async () => {
    const now = await punctual.enqueue(sendEmail, { to: "a@example.com", subject: "now" });
    const later = await punctual.enqueue(sendEmail, { to: "b@example.com", subject: "later" }, { delay: "1h" });
    const result = await drain({ pool: db.pool, tasks: allTasks });
    expect(result.ran).toEqual([
      expect.objectContaining({ id: now.id, task: "send-email", attempt: 1, outcome: "succeeded", payload: { to: "a@example.com", subject: "now" } }),
    ]);
    expect(result.failed).toEqual([]);
    expect(seen.map((s) => s.payload)).toEqual([{ to: "a@example.com", subject: "now", tags: [] }]);
    expect(await punctual.get(now.id)).toMatchObject({ state: "succeeded", attempts: 1, runAt: now.runAt, lockedBy: null });
    expect(await punctual.get(later.id)).toMatchObject({ state: "pending", attempts: 0, runAt: later.runAt });
    expect(await drain({ pool: db.pool, tasks: allTasks })).toEqual({ ran: [], succeeded: [], failed: [], rounds: 0 });
  });

  it("runs retries at once until success or the last attempt, and leaves the rows a worker leaves", async () => {
    const recovers = await punctual.enqueue(flaky, { failures: 1 });
    const hopeless = await punctual.enqueue(flaky, { failures: 5 });
    const result = await drain({ pool: db.pool, tasks: allTasks });
    const outcomes = (id: number) => result.ran.filter((r) => r.id === id).map((r) => [r.attempt, r.outcome]);
    expect(outcomes(recovers.id)).toEqual([[1, "retried"], [2, "succeeded"]]);
    expect(outcomes(hopeless.id)).toEqual([[1, "retried"], [2, "retried"], [3, "failed"]]);
    expect(result.failed.map((r) => r.error?.message)).toEqual(expect.arrayContaining(["attempt 3 failed"]));
    expect(await punctual.get(recovers.id)).toMatchObject({ state: "succeeded", attempts: 2, lastError: "attempt 1 failed" });
    expect(await punctual.get(hopeless.id)).toMatchObject({ state: "failed", attempts: 3, lastError: "attempt 3 failed" });
  });

  it("with retries: false, leaves a retry pending at its backoff", async () => {
    const { id } = await punctual.enqueue(flaky, { failures: 1 });
    // A backoff of 30-60 s: the retry is still pending when the test looks, however slow the machine.
    const result = await drain({ pool: db.pool, tasks: allTasks, retries: false, backoff: { baseMs: 60_000 } });
    expect(result.ran.map((r) => r.outcome)).toEqual(["retried"]);
    expect(await punctual.get(id)).toMatchObject({ state: "pending", attempts: 1, lastError: "attempt 1 failed" });
    await expectEnqueued(db.pool, flaky, { failures: 1 }, { delay: { min: "10s", max: "1m" } });
  });

  it("runs jobs that handlers enqueue, in the same drain", async () => {
    await punctual.enqueue(fanOut, { to: ["a@example.com", "b@example.com"] });
    const result = await drain({ pool: db.pool, tasks: allTasks });
    expect(result.succeeded.map((r) => r.task).sort()).toEqual(["fan-out", "send-email", "send-email"]);
    await expectEnqueued(db.pool, sendEmail, undefined, { count: 0 });
  });

  it("runs only the tasks it is given", async () => {
    await punctual.enqueue(sendEmail, { to: "a@example.com", subject: "x" });
    await punctual.enqueue(digest, { userId: 1 });
    const result = await drain({ pool: db.pool, tasks: [digest] });
    expect(result.succeeded.map((r) => r.task)).toEqual(["digest"]);
    await expectEnqueued(db.pool, sendEmail, { to: "a@example.com" });
  });

  it("fails a job whose stored payload does not match its schema, as the worker does", async () => {
    await db.pool.query(`select punctual.enqueue('send-email', '{"to": 42}')`);
    const result = await drain({ pool: db.pool, tasks: allTasks });
    expect(result.failed).toEqual([expect.objectContaining({ outcome: "failed", attempt: 1 })]);
    expect(result.failed[0]!.error).toBeInstanceOf(ValidationError);
    expect(seen).toEqual([]);
  });
});

describe("drain as of an instant", () => {
  const paris = { cron: "0 8 * * *", tz: "Europe/Paris" };
  /** The wall-clock time of an instant in Paris, "HH:MM". */
  const parisTime = (at: Date) => at.toLocaleTimeString("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit" });

  it("runs a daily 08:00 Europe/Paris schedule at its slot, and leaves the next day's 08:00 pending", async () => {
    const [first, second] = upcomingSlots(paris, new Date(), 2) as [Date, Date];
    const { id } = await punctual.schedule("digest:42", digest, { userId: 42 }, paris);
    const result = await drain({ pool: db.pool, tasks: allTasks, asOf: first });
    expect(result.ran).toEqual([expect.objectContaining({ id, key: "digest:42", outcome: "succeeded", slot: first })]);
    expect(seen).toEqual([{ task: "digest", payload: { userId: 42 }, attempt: 1, slot: first, late: false }]);
    // The row a worker running at 08:00 leaves: succeeded, due at its slot.
    expect(await punctual.get(id)).toMatchObject({ state: "succeeded", runAt: first, attempts: 1 });
    // The next occurrence: the next day's 08:00 in Paris (23, 24 or 25 hours later across DST).
    const [next] = await expectEnqueued(db.pool, digest, { userId: 42 }, { key: "digest:42", count: 1 });
    expect(next).toMatchObject({ slotAt: second, runAt: second, cron: "0 8 * * *", tz: "Europe/Paris" });
    expect(parisTime(next!.runAt)).toBe("08:00");
    expect(second.getTime() - first.getTime()).toBeGreaterThanOrEqual(23 * 3_600_000);

    // Half an hour after the second slot: it runs, and the third is next.
    const third = upcomingSlots(paris, second, 1)[0]!;
    const again = await drain({ pool: db.pool, tasks: allTasks, asOf: new Date(second.getTime() + 1_800_000) });
    expect(again.ran.map((r) => r.slot)).toEqual([second]);
    await expectEnqueued(db.pool, digest, undefined, { runAt: third, key: "digest:42", count: 1 });
  });

  it("runs every slot up to asOf once, in order, as a worker running all along would", async () => {
    const slots = upcomingSlots(paris, new Date(), 4);
    await punctual.schedule("digest:7", digest, { userId: 7 }, paris);
    const result = await drain({ pool: db.pool, tasks: allTasks, asOf: slots[2]! });
    expect(result.ran.map((r) => [r.slot, r.outcome])).toEqual(slots.slice(0, 3).map((slot) => [slot, "succeeded"]));
    expect(seen.map((s) => s.late)).toEqual([false, false, false]);
    const history = await listEnqueued(db.pool, { key: "digest:7", state: "any" });
    expect(history.map((j) => [j.state, j.slotAt, j.runAt])).toEqual([
      ["succeeded", slots[0], slots[0]],
      ["succeeded", slots[1], slots[1]],
      ["succeeded", slots[2], slots[2]],
      ["pending", slots[3], slots[3]],
    ]);
  });

  it("runs delayed one-off jobs due by then in due order, and leaves later ones", async () => {
    const start = Date.now();
    const at = (minutes: number) => new Date(start + minutes * 60_000);
    const b = await punctual.enqueue(sendEmail, { to: "b@example.com", subject: "b" }, { runAt: at(20) });
    const a = await punctual.enqueue(sendEmail, { to: "a@example.com", subject: "a" }, { runAt: at(10) });
    const now = await punctual.enqueue(sendEmail, { to: "now@example.com", subject: "now" });
    const late = await punctual.enqueue(sendEmail, { to: "c@example.com", subject: "c" }, { runAt: at(40) });
    const result = await drain({ pool: db.pool, tasks: allTasks, asOf: at(30) });
    expect(result.ran.map((r) => r.id).sort((x, y) => x - y)).toEqual([b.id, a.id, now.id]);
    // One handler at a time, in claim order: the one due now, then by run_at.
    expect(seen.map((s) => (s.payload as { subject: string }).subject)).toEqual(["now", "a", "b"]);
    expect(await punctual.get(a.id)).toMatchObject({ state: "succeeded", runAt: at(10) });
    expect(await punctual.get(b.id)).toMatchObject({ state: "succeeded", runAt: at(20) });
    expect(await punctual.get(now.id)).toMatchObject({ state: "succeeded", runAt: now.runAt });
    expect(await punctual.get(late.id)).toMatchObject({ state: "pending", runAt: at(40) });
  });

  it("counts a retry's backoff and a fixed delay from asOf", async () => {
    const asOf = new Date(Date.now() + 86_400_000);
    const retried = await punctual.enqueue(flaky, { failures: 1 }, { runAt: new Date(asOf.getTime() - 60_000) });
    await punctual.schedule("poll", digest, { userId: 1 }, { every: "1h", fixedDelay: true }, { startAt: new Date(asOf.getTime() - 60_000) });
    const result = await drain({ pool: db.pool, tasks: allTasks, asOf, retries: false });
    expect(result.ran.map((r) => [r.task, r.outcome]).sort()).toEqual([
      ["digest", "succeeded"],
      ["flaky", "retried"],
    ]);
    const retry = await punctual.get(retried.id);
    expect(retry).toMatchObject({ state: "pending", attempts: 1 });
    expect(retry!.runAt.getTime()).toBeGreaterThan(asOf.getTime());
    const [next] = await listEnqueued(db.pool, { key: "poll" });
    expect(next!.runAt.getTime()).toBeGreaterThanOrEqual(asOf.getTime() + 3_600_000);
    expect(next!.slotAt).toEqual(next!.runAt);
  });

  it("stops at maxRuns with what ran, when a schedule keeps falling due", async () => {
    await punctual.schedule("every-minute", digest, { userId: 1 }, { every: "1m" });
    const error = await drain({ pool: db.pool, tasks: allTasks, asOf: new Date(Date.now() + 86_400_000), maxRuns: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DrainLimitError);
    expect((error as DrainLimitError).result.ran).toHaveLength(3);
    expect((error as Error).message).toMatch(/drain stopped after 3 runs \(maxRuns\) with 1 job\(s\) still due/);
    // Nothing is left moved or running.
    const live = await listEnqueued(db.pool, { key: "every-minute", state: ["pending", "running"] });
    expect(live).toHaveLength(1);
    expect(live[0]).toMatchObject({ state: "pending" });
    expect(live[0]!.runAt).toEqual(live[0]!.slotAt);
  });

  it("refuses an instant before the database's clock, and bad options", async () => {
    await expect(drain({ pool: db.pool, tasks: allTasks, asOf: new Date(Date.now() - 3_600_000) })).rejects.toThrow(
      /asOf: .* is before the database's clock/,
    );
    await expect(drain({ pool: db.pool, tasks: allTasks, asOf: "tomorrow" })).rejects.toThrow(ValidationError);
    await expect(drain({ pool: db.pool, tasks: [] })).rejects.toThrow(ValidationError);
    await expect(drain({ pool: db.pool, tasks: allTasks, maxRuns: 0 })).rejects.toThrow(/maxRuns/);
  });
});

// The demo's own tests (examples/demo/demo.spec.ts), on this file's database.
demoTests(() => db.pool);
