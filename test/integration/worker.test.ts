import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineTask } from "../../src/index.js";
import { workerHarness } from "../support/worker-harness.js";
import { collect, next } from "../support/events.js";
import { noop } from "../fixtures/tasks.js";

const t = workerHarness({ pollIntervalMs: 20, backoff: { baseMs: 1, maxMs: 5 } });
const startWorker = t.startWorker;

describe("running jobs", () => {
  it("runs a job with its parsed payload and records success", async () => {
    const seen: unknown[] = [];
    const greet = defineTask({
      name: "greet",
      payload: z.object({ name: z.string(), times: z.coerce.number() }),
      run: (payload, { job }) => void seen.push({ payload, attempt: job.attempt }),
    });
    const { id } = await t.punctual.enqueue(greet, { name: "Ada", times: "2" });
    const worker = startWorker({ tasks: [greet] });
    const [event] = await next(worker, "job:succeeded");
    expect(event.id).toBe(id);
    expect(seen).toEqual([{ payload: { name: "Ada", times: 2 }, attempt: 1 }]);
    const job = await t.punctual.get(id);
    expect(job).toMatchObject({ state: "succeeded", attempts: 1, lockedBy: null });
    expect(job?.finishedAt).toBeInstanceOf(Date);
  });

  it("a handler that fails twice then succeeds ends succeeded with attempts 3", async () => {
    let calls = 0;
    const flaky = defineTask({
      name: "flaky",
      payload: z.object({}),
      run: () => {
        calls += 1;
        if (calls < 3) throw new Error(`boom ${calls}`);
      },
    });
    const { id } = await t.punctual.enqueue(flaky, {});
    const worker = startWorker({ tasks: [flaky] });
    const retried = collect(worker, "job:retried", 2);
    await collect(worker, "job:succeeded", 1);
    expect((await retried).map(([, { error }]) => error.message)).toEqual(["boom 1", "boom 2"]);
    expect(await t.punctual.get(id)).toMatchObject({ state: "succeeded", attempts: 3, lastError: "boom 2" });
  });

  it("one that always fails ends failed with its last error and stack stored", async () => {
    const broken = defineTask({
      name: "broken",
      payload: z.object({}),
      maxAttempts: 3,
      run: ({}, { job }) => {
        throw new TypeError(`attempt ${job.attempt} cannot work`);
      },
    });
    const { id } = await t.punctual.enqueue(broken, {});
    const worker = startWorker({ tasks: [broken] });
    const [, { error, state }] = await next(worker, "job:failed");
    expect(state).toBe("failed");
    expect(error.message).toBe("attempt 3 cannot work");
    const job = await t.punctual.get(id);
    expect(job).toMatchObject({ state: "failed", attempts: 3, lastError: "attempt 3 cannot work" });
    expect(job?.lastErrorStack).toContain("TypeError: attempt 3 cannot work");
  });

  it("backs off between retries: the retried job is due later than it failed", async () => {
    const once = defineTask({ name: "fails-once", payload: z.object({}), run: () => Promise.reject(new Error("no")) });
    const { id } = await t.punctual.enqueue(once, {}, { maxAttempts: 2 });
    const worker = startWorker({ tasks: [once], backoff: { baseMs: 3_600_000 } });
    const [, { runAt }] = await next(worker, "job:retried");
    const job = await t.punctual.get(id);
    expect(job?.state).toBe("pending");
    // base one hour, jitter scales it into [30 min, 60 min]
    const delayMs = job!.runAt.getTime() - job!.updatedAt.getTime();
    expect(delayMs).toBeGreaterThanOrEqual(1_800_000 - 1000);
    expect(delayMs).toBeLessThanOrEqual(3_600_000 + 1000);
    expect(Math.abs(runAt.getTime() - job!.runAt.getTime())).toBeLessThan(60_000);
  });

  it("a row written by SQL with a payload that fails the schema fails once, clearly, without retries", async () => {
    const strict = defineTask({ name: "strict", payload: z.object({ email: z.email() }), run: () => {} });
    await t.db.pool.query(`select punctual.enqueue('strict', '{"email": "not-an-email"}', key => 'bad-row')`);
    const worker = startWorker({ tasks: [strict] });
    const [, { error }] = await next(worker, "job:failed");
    expect(error.message).toMatch(/^payload\.email: does not match task "strict"/);
    expect(await t.punctual.get("bad-row")).toMatchObject({ state: "failed", attempts: 1 });
  });

  it("does not claim jobs of tasks it does not know, nor of other queues, nor future ones", async () => {
    await t.db.pool.query(`select punctual.enqueue('someone-elses-task', '{}', key => 'foreign')`);
    await t.punctual.enqueue(noop, {}, { key: "other-queue", queue: "reports" });
    await t.punctual.enqueue(noop, {}, { key: "later", delay: "1h" });
    const { id } = await t.punctual.enqueue(noop, {}, { key: "mine" });
    const worker = startWorker({ tasks: [noop] });
    const [event] = await next(worker, "job:succeeded");
    expect(event.id).toBe(id);
    // A claim after the job finished found nothing else it may take.
    await collect(worker, "worker:poll", 1, ({ claimed }) => claimed === 0);
    const { rows } = await t.db.pool.query("select key, state from punctual.jobs where key <> 'mine' order by key");
    expect(rows).toEqual([
      { key: "foreign", state: "pending" },
      { key: "later", state: "pending" },
      { key: "other-queue", state: "pending" },
    ]);
  });

  it("runs more urgent priorities first among due jobs", async () => {
    const order: number[] = [];
    const ordered = defineTask({
      name: "ordered",
      payload: z.object({ priority: z.number() }),
      run: ({ priority }) => void order.push(priority),
    });
    await t.punctual.enqueueMany([5, -3, 0, 10, -10].map((priority) => ({ task: ordered, payload: { priority }, priority })));
    const worker = startWorker({ tasks: [ordered], concurrency: 1 });
    await collect(worker, "job:succeeded", 5);
    expect(order).toEqual([-10, -3, 0, 5, 10]);
  });

  it("never runs more handlers at once than its concurrency", async () => {
    let active = 0;
    let peak = 0;
    const busy = defineTask({
      name: "busy",
      payload: z.object({}),
      run: async () => {
        active += 1;
        peak = Math.max(peak, active);
        await new Promise((resolve) => setImmediate(resolve));
        active -= 1;
      },
    });
    await t.punctual.enqueueMany(Array.from({ length: 50 }, () => ({ task: busy, payload: {} })));
    const worker = startWorker({ tasks: [busy], concurrency: 4 });
    await collect(worker, "job:succeeded", 50);
    expect(peak).toBe(4);
  });
});

describe("stop", () => {
  it("waits for running handlers, then claims nothing more", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = defineTask({ name: "slow", payload: z.object({}), run: () => gate });
    const { id } = await t.punctual.enqueue(slow, {});
    const worker = startWorker({ tasks: [slow] });
    await collect(worker, "job:claimed", 1);
    const stopped = worker.stop({ timeoutMs: 60_000 });
    await t.punctual.enqueue(slow, {}, { key: "after-stop" });
    release();
    await stopped;
    expect((await t.punctual.get(id))?.state).toBe("succeeded");
    expect((await t.punctual.get("after-stop"))?.state).toBe("pending");
  });

  it("past the timeout, aborts handlers through their signal and hands the jobs back to pending", async () => {
    let aborted: unknown = null;
    const stubborn = defineTask({
      name: "stubborn",
      payload: z.object({}),
      run: (_, { signal }) =>
        new Promise<void>(() => {
          signal.addEventListener("abort", () => (aborted = signal.reason));
        }),
    });
    const { id } = await t.punctual.enqueue(stubborn, {});
    const worker = startWorker({ tasks: [stubborn] });
    await collect(worker, "job:claimed", 1);
    await worker.stop({ timeoutMs: 50 });
    expect(String(aborted)).toMatch(/drain timeout/);
    expect(await t.punctual.get(id)).toMatchObject({ state: "pending", lockedBy: null, attempts: 1 });
  });
});
