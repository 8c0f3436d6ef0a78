/**
 * Worker defects a user hit under ordinary use: a finished job reported lost, a cancel
 * that reached the handler only at the next heartbeat, one bad outcome stalling every
 * outcome, an unbounded drain, a listener's exception escaping, renewals piling up on a
 * slow database, and error logs without the error's type. Interleavings are forced
 * with a gated pool (test/support/gated-pool.ts) and awaited through events.
 */
import { setImmediate as tick } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClient, createWorker, defineTask, type Client, type Worker, type WorkerOptions } from "../../src/index.js";
import { toQueryable, type Queryable } from "../../src/executor.js";
import { jobClaim, jobCompleteAndClaim } from "../../src/sql/jobs.js";
import { ERROR_MESSAGE_MAX, OutcomeBatcher } from "../../src/worker/outcome-batcher.js";
import { captureLogs } from "../support/logs.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { collect, next } from "../support/events.js";
import { GatedPool } from "../support/gated-pool.js";

let db: TestDatabase;
let punctual: Client;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  punctual = createClient({ executor: db.pool });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await db.pool.query("truncate punctual.jobs");
});
afterAll(() => db.drop());

/** A pool on the test database that the test can gate; ended after the test. */
function gatedPool() {
  const pool = new GatedPool({ connectionString: db.url, max: 6 });
  pool.on("error", () => {});
  cleanups.push(() => pool.end());
  return pool;
}


function startWorker(options: Partial<WorkerOptions> & Pick<WorkerOptions, "tasks">): Worker {
  const worker = createWorker({ logger: pino({ level: "silent" }), ...options, ...(options.pool ? {} : { connectionString: db.url }) });
  cleanups.push(() => worker.stop({ timeoutMs: 500 }));
  void worker.start();
  return worker;
}

/** A task whose handler waits until the test releases that job (or its signal fires). */
function heldTask(name: string) {
  const releases = new Map<string, () => void>();
  const task = defineTask({
    name,
    payload: z.object({ tag: z.string() }),
    run: ({ tag }, { signal }) =>
      new Promise<void>((resolve, reject) => {
        releases.set(tag, resolve);
        signal.addEventListener("abort", () => reject(signal.reason));
      }),
  });
  return { task, release: (tag: string) => releases.get(tag)!() };
}

describe("lease renewal", () => {
  it("a job that completes while a renewal is in flight is not reported lost", async () => {
    const pool = gatedPool();
    const { task, release } = heldTask("held");
    const worker = startWorker({ pool, tasks: [task], heartbeatIntervalMs: 20, leaseMs: 60_000 });
    const lost: number[] = [];
    worker.on("job:lost", (job) => lost.push(job.id));
    const claimed = collect(worker, "job:claimed", 2);
    const [a, b] = await punctual.enqueueMany([
      { task, payload: { tag: "a" } },
      { task, payload: { tag: "b" } },
    ]);
    await claimed;

    // The renewal takes its list of running jobs (a and b), then waits at the gate...
    const renewal = pool.gate((_text, name) => name === "punctual_renew_leases");
    await renewal.reached;
    // ...while a finishes and its success is written.
    const succeeded = next(worker, "job:succeeded", (job) => job.id === a!.id);
    release("a");
    await succeeded;
    renewal.open();
    await renewal.finished;
    await tick();

    expect(lost).toEqual([]);
    expect((await punctual.get(a!.id))!.state).toBe("succeeded");
    // b is still held and renewed.
    expect((await punctual.get(b!.id))!.state).toBe("running");
    const bDone = next(worker, "job:succeeded", (job) => job.id === b!.id);
    release("b");
    await bDone;
    expect(lost).toEqual([]);
  });

  it("a stale attempt's late outcome does not complete the job's next attempt, even on the same worker", async () => {
    const pool = gatedPool();
    const releases = new Map<number, () => void>();
    const task = defineTask({
      name: "twice",
      payload: z.object({}),
      run: (_payload, { job }) => new Promise<void>((resolve) => releases.set(job.attempt, resolve)),
    });
    // Renewals never reach the database: the lease runs out while attempt 1 runs.
    const renewals = pool.gate((_text, name) => name === "punctual_renew_leases");
    const worker = startWorker({ pool, tasks: [task], leaseMs: 200, heartbeatIntervalMs: 20, rescueIntervalMs: 20, pollIntervalMs: 20, concurrency: 2 });
    const second = next(worker, "job:claimed", (job) => job.attempt === 2);
    const { id } = await punctual.enqueue(task, {});
    // Rescued (by this same worker's rescuer) and claimed again by this worker.
    await second;
    const lost = next(worker, "job:lost");
    releases.get(1)!();
    expect((await lost)[0]).toMatchObject({ id, attempt: 1 });
    expect(await punctual.get(id)).toMatchObject({ state: "running", attempts: 2 });

    renewals.open();
    const done = next(worker, "job:succeeded");
    releases.get(2)!();
    expect((await done)[0]).toMatchObject({ id, attempt: 2 });
    expect(await punctual.get(id)).toMatchObject({ state: "succeeded", attempts: 2 });
  });

  it("a job whose success waits to be written keeps its lease renewed: it is not rescued and run again", async () => {
    const pool = gatedPool();
    const task = defineTask({ name: "written-late", payload: z.object({}), run: () => {} });
    // Successes cannot be written for now (alone, or riding a claim).
    const writes = pool.gate((text) => text.includes("set state = 'succeeded'"));
    const renewals = pool.gate((_text, name) => name === "punctual_renew_leases");
    renewals.open(); // counted, not held
    const worker = startWorker({ pool, tasks: [task], leaseMs: 200, heartbeatIntervalMs: 20, rescueIntervalMs: 20 });
    cleanups.push(async () => writes.open()); // before the worker's stop, even on failure
    const rescued: unknown[] = [];
    worker.on("job:rescued", (job) => rescued.push(job));
    const claimed = next(worker, "job:claimed");
    const { id } = await punctual.enqueue(task, {});
    await claimed;
    await writes.reached;
    // Forty renewals at 20 ms: four lease lengths after the handler returned.
    await renewals.arrivals(renewals.count + 40);
    expect(rescued).toEqual([]);
    expect(await punctual.get(id)).toMatchObject({ state: "running", attempts: 1 });

    const done = next(worker, "job:succeeded");
    writes.open();
    await done;
    expect(await punctual.get(id)).toMatchObject({ state: "succeeded", attempts: 1 });
    expect(rescued).toEqual([]);
  });

  it("the next renewal starts only when the previous one has finished, however slow the database", async () => {
    const pool = gatedPool();
    const { task, release } = heldTask("slow-db");
    const worker = startWorker({ pool, tasks: [task], heartbeatIntervalMs: 10, pollIntervalMs: 10, leaseMs: 60_000 });
    const renewals = pool.gate((_text, name) => name === "punctual_renew_leases");
    const claimed = next(worker, "job:claimed");
    await punctual.enqueue(task, { tag: "x" });
    await claimed;
    await renewals.reached;
    // Twenty idle polls at a 10 ms interval: twenty heartbeat intervals have passed.
    await collect(worker, "worker:poll", 20);
    expect(renewals.count).toBe(1);
    renewals.open();
    release("x");
  });
});

describe("cancel of a running job", () => {
  it("reaches the handler's signal at once through NOTIFY, not at the next heartbeat", async () => {
    const { task } = heldTask("cancellable");
    // A heartbeat an hour away: only the NOTIFY can deliver the cancel in this test's time.
    const worker = startWorker({ tasks: [task], heartbeatIntervalMs: 3_600_000 });
    await next(worker, "worker:listening");
    const claimed = next(worker, "job:claimed");
    await punctual.enqueue(task, { tag: "c" }, { key: "cancel-me" });
    await claimed;
    const failed = next(worker, "job:failed");
    await punctual.cancel("cancel-me");
    const [job, { error, state }] = await failed;
    expect(state).toBe("cancelled");
    expect(error.message).toBe("cancelled");
    expect((await punctual.get(job.id))!.state).toBe("cancelled");
  });

  it("a cancel written in plain SQL is delivered the same way", async () => {
    const { task } = heldTask("sql-cancelled");
    const worker = startWorker({ tasks: [task], heartbeatIntervalMs: 3_600_000 });
    await next(worker, "worker:listening");
    const claimed = next(worker, "job:claimed");
    const { id } = await punctual.enqueue(task, { tag: "s" });
    await claimed;
    const failed = next(worker, "job:failed");
    await db.pool.query("update punctual.jobs set cancel_requested_at = now() where id = $1", [id]);
    expect((await failed)[1].state).toBe("cancelled");
  });

  it("without LISTEN (poll-only), the heartbeat still delivers it", async () => {
    const { task } = heldTask("poll-only-cancel");
    const worker = startWorker({ tasks: [task], listen: false, heartbeatIntervalMs: 20, pollIntervalMs: 20 });
    const claimed = next(worker, "job:claimed");
    await punctual.enqueue(task, { tag: "p" }, { key: "cancel-poll-only" });
    await claimed;
    const failed = next(worker, "job:failed");
    await punctual.cancel("cancel-poll-only");
    expect((await failed)[1].state).toBe("cancelled");
  });
});

describe("outcome writing", () => {
  it("a poison error message (NUL, unpaired surrogate, 100k characters) is stored cleaned, and its healthy neighbours are written with it", async () => {
    const fail = (message: string) => () => {
      throw new Error(message);
    };
    const tasks = [
      defineTask({ name: "nul", payload: z.object({}), maxAttempts: 1, run: fail("bad\u0000byte \ud800 here") }),
      defineTask({ name: "huge", payload: z.object({}), maxAttempts: 1, run: fail("x".repeat(100_000)) }),
      defineTask({ name: "ordinary", payload: z.object({}), maxAttempts: 1, run: fail("ordinary failure") }),
      defineTask({ name: "fine", payload: z.object({}), run: () => {} }),
    ];
    const worker = startWorker({ tasks, concurrency: 10 });
    const failed = collect(worker, "job:failed", 3);
    const succeeded = next(worker, "job:succeeded");
    await punctual.enqueueMany(tasks.map((task) => ({ task, payload: {} })));
    await Promise.all([failed, succeeded]);

    const { rows } = await db.pool.query("select task, state, last_error from punctual.jobs order by task");
    const byTask = Object.fromEntries(rows.map((r) => [r.task, r]));
    expect(byTask.nul).toMatchObject({ state: "failed", last_error: "bad\uFFFDbyte \uFFFD here" });
    expect(byTask.ordinary).toMatchObject({ state: "failed", last_error: "ordinary failure" });
    expect(byTask.fine.state).toBe("succeeded");
    expect(byTask.huge.state).toBe("failed");
    expect(byTask.huge.last_error).toBe(`${"x".repeat(ERROR_MESSAGE_MAX)}… (${100_000 - ERROR_MESSAGE_MAX} more characters)`);
  });

  it("an outcome the database refuses is given up alone: its neighbours are written, and it is not retried forever", async () => {
    const tasks = [defineTask({ name: "direct", payload: z.object({}), run: () => {} })];
    await punctual.enqueueMany([0, 1, 2].map(() => ({ task: tasks[0]!, payload: {} })));
    const queryable = toQueryable(db.pool);
    const claimed = await jobClaim(queryable, { workerId: "w1", queues: ["default"], tasks: ["direct"], limit: 3, leaseMs: 60_000 });
    const [a, b, c] = claimed.map((row) => Number(row.id));
    const errors: unknown[] = [];
    const batcher = new OutcomeBatcher(queryable, "w1", (error) => errors.push(error), 10);
    const none = { attempt: 1, next_slot: null, cron: null, tz: null, every_ms: null, fixed_delay: false };
    const failure = { stack: null, retryable: true, ...none };
    const states = await Promise.all([
      // An integer overflow: PostgreSQL refuses this one for what it carries, every time.
      batcher.failure({ id: a!, message: "poison", retry_delay_ms: 2 ** 40, ...failure }),
      batcher.failure({ id: b!, message: "healthy", retry_delay_ms: 1000, ...failure }),
      batcher.success({ id: c!, ...none }),
    ]);
    expect(states).toEqual(["unrecorded", "pending", "succeeded"]);
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message)).toContain(`outcome of job ${a}`);
    expect(await batcher.drain(1000)).toBe(true);
    const { rows } = await db.pool.query("select id, state, last_error from punctual.jobs order by id");
    expect(rows.map((r) => [Number(r.id), r.state])).toEqual([[a, "running"], [b, "pending"], [c, "succeeded"]]);
  });

  it("a claim sent while successes wait for their batch carries them; a success no claim takes is written on its own", async () => {
    const tasks = [defineTask({ name: "direct", payload: z.object({}), run: () => {} })];
    await punctual.enqueueMany([0, 1].map(() => ({ task: tasks[0]!, payload: {} })));
    const queryable = toQueryable(db.pool);
    const params = { workerId: "w1", queues: ["default"], tasks: ["direct"], limit: 2, leaseMs: 60_000 };
    const [a, b] = (await jobClaim(queryable, params)).map((row) => Number(row.id));
    const statements: string[] = [];
    const counting: Queryable = {
      query: (text, values, name) => {
        statements.push(name ?? text);
        return queryable.query(text, values, name);
      },
    };
    const batcher = new OutcomeBatcher(counting, "w1", () => {});
    const none = { attempt: 1, next_slot: null, cron: null, tz: null, every_ms: null, fixed_delay: false };
    const first = batcher.success({ id: a!, ...none });
    // A claim sent in the same tick (a freed slot's claim) takes it before the batcher writes it.
    const taken = batcher.takeSuccesses()!;
    expect(taken.successes.map((s) => s.id)).toEqual([a]);
    taken.settle((await jobCompleteAndClaim(queryable, params, taken.successes)).completed);
    expect(await first).toBe("succeeded");
    expect(await batcher.success({ id: b!, ...none })).toBe("succeeded");
    expect(statements).toEqual(["complete"]);
  });

  it("a freed slot's claim carries the success that freed it: one statement per job, none written alone", async () => {
    const pool = gatedPool();
    const task = defineTask({ name: "one-at-a-time", payload: z.object({ n: z.number() }), run: () => {} });
    // Counted, not held.
    const carried = pool.gate((_text, name) => name?.startsWith("punctual_complete_claim") ?? false);
    const alone = pool.gate((_text, name) => name?.startsWith("punctual_complete") ?? false);
    carried.open();
    alone.open();
    await punctual.enqueueMany([1, 2, 3].map((n) => ({ task, payload: { n } })));
    const worker = startWorker({ pool, tasks: [task], concurrency: 1, prefetch: 0 });
    await collect(worker, "job:succeeded", 3);
    // Each success rode the claim its freed slot made (the last one's found nothing to claim).
    expect(carried.count).toBe(3);
    expect(alone.count).toBe(0);
  });

  it("a success is written while the worker's next claim is held up: it does not wait for that claim", async () => {
    const pool = gatedPool();
    const { task, release } = heldTask("beside-claim");
    const worker = startWorker({ pool, tasks: [task], concurrency: 2, prefetch: 0 });
    const succeeded = collect(worker, "job:succeeded", 1);
    const claimedA = next(worker, "job:claimed");
    const a = await punctual.enqueue(task, { tag: "a" });
    await claimedA;
    // From now on every claim waits at the gate; B's arrival sends one.
    const claims = pool.gate((text) => text.includes("for update skip locked"));
    const claimedB = next(worker, "job:claimed");
    const b = await punctual.enqueue(task, { tag: "b" });
    await claims.reached;
    release("a");
    expect((await succeeded).map(([job]) => job.id)).toEqual([a.id]);
    const { rows } = await db.pool.query("select id::int, state from punctual.jobs order by id");
    expect(rows).toEqual([{ id: a.id, state: "succeeded" }, { id: b.id, state: "pending" }]);
    claims.open();
    expect((await claimedB)[0].id).toBe(b.id);
    release("b");
  });

  it("stop() is bounded when outcomes cannot be written: it gives up after the timeout and says which jobs", async () => {
    const pool = gatedPool();
    const { lines, logger } = captureLogs();
    const task = defineTask({ name: "unwritable", payload: z.object({}), maxAttempts: 1, run: () => {
      throw new Error("boom");
    } });
    const worker = createWorker({ pool, tasks: [task], logger });
    // Failures are never written: the statement waits at a gate that opens only after the test.
    const writes = pool.gate((text) => text.includes("with failed as"));
    cleanups.push(async () => writes.open());
    await worker.start();
    const { id } = await punctual.enqueue(task, {});
    await writes.reached;
    await worker.stop({ timeoutMs: 50 });
    const gaveUp = lines.find((line) => line.msg === "gave up writing outcomes; unless a write still lands, these jobs run again once their lease expires");
    expect(gaveUp).toMatchObject({ jobs: [id] });
  });
});

describe("event listeners", () => {
  it("a listener that throws is logged, and the worker carries on (no unhandled rejection)", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    cleanups.push(async () => process.off("unhandledRejection", onUnhandled));
    const { lines, logger } = captureLogs();
    const task = defineTask({ name: "observed", payload: z.object({ n: z.number() }), run: () => {} });
    const worker = startWorker({ tasks: [task], logger });
    worker.on("job:succeeded", () => {
      throw new Error("bug in the app's metrics code");
    });
    worker.on("worker:poll", () => {
      throw new Error("bug in a poll listener");
    });
    const done = collect(worker, "job:succeeded", 2);
    await punctual.enqueue(task, { n: 1 });
    await punctual.enqueue(task, { n: 2 });
    await done;
    const { rows } = await db.pool.query("select state from punctual.jobs");
    expect(rows.map((r) => r.state)).toEqual(["succeeded", "succeeded"]);
    // Past the worker's own handling of both jobs.
    await tick();
    expect(unhandled).toEqual([]);
    const threw = lines.filter((line) => line.msg === "a worker event listener threw; the worker carries on");
    expect(threw.map((line) => line.event)).toContain("job:succeeded");
    expect(threw.map((line) => line.event)).toContain("worker:poll");
    expect(lines.filter((line) => line.msg === "worker error")).toEqual([]);
  });
});

describe("logs", () => {
  it("a worker error is logged with its type, message and SQLSTATE code", async () => {
    const { lines, logger } = captureLogs();
    const missing = new URL(db.url);
    missing.pathname = "/punctual_no_such_database";
    const task = defineTask({ name: "never", payload: z.object({}), run: () => {} });
    const worker = createWorker({ connectionString: missing.href, tasks: [task], logger, listen: false, pollIntervalMs: 50 });
    cleanups.push(() => worker.stop({ timeoutMs: 100 }));
    const failed = next(worker, "worker:error");
    void worker.start();
    await failed;
    const line = lines.find((l) => l.msg === "worker error") as { err: Record<string, unknown> };
    expect(line.err).toMatchObject({ type: "DatabaseError", code: "3D000" });
    expect(line.err.message).toContain("punctual_no_such_database");
  });

  it("a success is logged at debug, a failure at warn (retry) or error (final)", async () => {
    const { lines, logger } = captureLogs();
    const ok = defineTask({ name: "ok", payload: z.object({}), run: () => {} });
    const bad = defineTask({ name: "bad", payload: z.object({}), maxAttempts: 2, backoff: { baseMs: 1, maxMs: 1 }, run: () => {
      throw new Error("no");
    } });
    const worker = startWorker({ tasks: [ok, bad], logger });
    const finished = Promise.all([next(worker, "job:succeeded"), next(worker, "job:failed")]);
    await punctual.enqueueMany([{ task: ok, payload: {} }, { task: bad, payload: {} }]);
    await finished;
    const level = (msg: string) => lines.find((line) => line.msg === msg)?.level;
    expect(level("job succeeded")).toBe(20);
    expect(level("job failed; will retry")).toBe(40);
    expect(level("job failed")).toBe(50);
  });
});
