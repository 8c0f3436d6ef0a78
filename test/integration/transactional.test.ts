/**
 * Exactly-once database effects: a handler's writes and its job's completion commit in
 * one transaction (`ctx.complete(tx)`), so no crash or lost lease can leave "the writes
 * happened, and the job will run again".
 */
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { z } from "zod";
import { beforeAll, describe, expect, it } from "vitest";
import { defineTask, LeaseLostError } from "../../src/index.js";
import { collect, next } from "../support/events.js";
import { exited, forkFixture } from "../support/processes.js";
import { workerHarness } from "../support/worker-harness.js";
import { makeTxTask } from "../fixtures/tx-tasks.js";

const t = workerHarness();

beforeAll(async () => {
  await t.db.pool.query("create table tx_effects (job_id bigint not null, attempt int not null, n int not null)");
});

async function effects(jobId: number) {
  const { rows } = await t.db.pool.query<{ attempt: number }>("select attempt from tx_effects where job_id = $1", [jobId]);
  return rows;
}

async function jobRow(id: number) {
  const { rows } = await t.db.pool.query("select state, attempts, last_error from punctual.jobs where id = $1", [id]);
  return rows[0];
}

describe("ctx.complete(tx): the handler's writes and the job's success commit together", () => {
  it("commits the write and the success in one transaction; the worker reports the success once", async () => {
    const task = makeTxTask(() => t.db.pool);
    const worker = t.startWorker({ tasks: [task] });
    const events: string[] = [];
    worker.on("job:succeeded", () => events.push("succeeded"));
    worker.on("job:lost", () => events.push("lost"));
    const succeeded = collect(worker, "job:succeeded", 10);
    const jobs = await t.punctual.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ task, payload: { n } })));
    await succeeded;
    for (const { id } of jobs) {
      expect(await effects(id)).toEqual([{ attempt: 1 }]);
      expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 1 });
    }
    // Each success was reported once, and none as lost: the worker saw that the
    // handler's transaction had recorded it.
    await worker.stop();
    expect(events).toEqual(Array.from({ length: 10 }, () => "succeeded"));
  });

  it("a periodic job's next occurrence is written in the same commit as the handler's write", async () => {
    const task = makeTxTask(() => t.db.pool);
    const worker = t.startWorker({ tasks: [task] });
    const succeeded = next(worker, "job:succeeded");
    await t.punctual.schedule("tx:hourly", task, { n: 2 }, { every: "1h" }, { startAt: new Date() });
    const [job] = await succeeded;
    const { rows } = await t.db.pool.query<{ what: string; xmin: string }>(
      `select 'effect' as what, xmin::text from tx_effects where job_id = $1
       union all select 'done', xmin::text from punctual.jobs where id = $1
       union all select 'next', xmin::text from punctual.jobs where key = 'tx:hourly' and state = 'pending'`,
      [job.id],
    );
    expect(rows.map((r) => r.what).sort()).toEqual(["done", "effect", "next"]);
    expect(new Set(rows.map((r) => r.xmin)).size).toBe(1);
  });

  it("works with a drizzle transaction", async () => {
    const app = drizzle({ client: t.db.pool });
    const task = defineTask({
      name: "tx-drizzle",
      payload: z.object({ n: z.number() }),
      run: async ({ n }, ctx) => {
        await app.transaction(async (tx) => {
          await tx.execute(sql`insert into tx_effects (job_id, attempt, n) values (${ctx.job.id}, ${ctx.job.attempt}, ${n})`);
          await ctx.complete(tx);
        });
      },
    });
    const worker = t.startWorker({ tasks: [task] });
    const succeeded = next(worker, "job:succeeded");
    const { id } = await t.punctual.enqueue(task, { n: 3 });
    await succeeded;
    expect(await effects(id)).toEqual([{ attempt: 1 }]);
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 1 });
  });

  it("complete taken out of ctx ({ job, complete }) works the same; ctx's own keys are only job", async () => {
    const app = drizzle({ client: t.db.pool });
    let keys: string[] = [];
    const task = defineTask({
      name: "tx-destructured",
      payload: z.object({ n: z.number() }),
      run: async ({ n }, ctx) => {
        keys = Object.keys(ctx);
        const { job, complete } = ctx;
        await app.transaction(async (tx) => {
          await tx.execute(sql`insert into tx_effects (job_id, attempt, n) values (${job.id}, ${job.attempt}, ${n})`);
          await complete(tx);
        });
      },
    });
    const worker = t.startWorker({ tasks: [task] });
    const events: string[] = [];
    worker.on("job:succeeded", () => events.push("succeeded"));
    worker.on("job:lost", () => events.push("lost"));
    const succeeded = next(worker, "job:succeeded");
    const { id } = await t.punctual.enqueue(task, { n: 5 });
    await succeeded;
    expect(await effects(id)).toEqual([{ attempt: 1 }]);
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 1 });
    await worker.stop();
    // Reported as the success it is (the worker knew the transaction recorded it), once.
    expect(events).toEqual(["succeeded"]);
    // The worker's own state is not on ctx for a handler to log or spread.
    expect(keys).toEqual(["job"]);
  });

  it("a handler that throws after its write rolls the write back, and the retry is recorded", async () => {
    let attempts = 0;
    const task = makeTxTask(() => t.db.pool, {
      beforeCommit: () => {
        if (++attempts === 1) throw new Error("boom after the write");
      },
    });
    const worker = t.startWorker({ tasks: [task] });
    const retried = next(worker, "job:retried");
    const succeeded = next(worker, "job:succeeded");
    const { id } = await t.punctual.enqueue(task, { n: 4 });
    const [, { error }] = await retried;
    expect(error.message).toBe("boom after the write");
    await succeeded;
    // Only the second attempt's write exists.
    expect(await effects(id)).toEqual([{ attempt: 2 }]);
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 2 });
  });

  it("a handler that rolls back yet returns still succeeds, as any handler that returns", async () => {
    const task = defineTask({
      name: "tx-rollback",
      payload: z.object({}),
      run: async (_payload, ctx) => {
        const client = await t.db.pool.connect();
        try {
          await client.query("begin");
          await ctx.complete(client);
          await client.query("rollback");
        } finally {
          client.release();
        }
      },
    });
    const worker = t.startWorker({ tasks: [task] });
    const succeeded = next(worker, "job:succeeded");
    const { id } = await t.punctual.enqueue(task, {});
    await succeeded;
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 1 });
  });

  it("a lease taken over mid-handler: complete throws LeaseLostError, and the old handler's writes never happen", async () => {
    const thrown: unknown[] = [];
    const task = makeTxTask(() => t.db.pool, {
      beforeComplete: async (jobId) => {
        // Meanwhile the lease expired, the job was rescued, and another worker claimed it.
        await t.db.pool.query("update punctual.jobs set locked_by = 'another-worker', attempts = attempts + 1 where id = $1", [jobId]);
      },
    });
    const wrapped = defineTask({
      ...task,
      run: async (payload, ctx) => {
        try {
          await task.run(payload, ctx);
        } catch (error) {
          thrown.push(error);
          throw error;
        }
      },
    });
    const worker = t.startWorker({ tasks: [wrapped] });
    const lost = next(worker, "job:lost");
    const { id } = await t.punctual.enqueue(wrapped, { n: 5 });
    await lost;
    expect(thrown).toHaveLength(1);
    expect(thrown[0]).toBeInstanceOf(LeaseLostError);
    expect(await effects(id)).toEqual([]);
    expect(await jobRow(id)).toMatchObject({ state: "running", attempts: 2 });
  });

  /** Starts the worker process that hangs at `killPoint`, enqueues a job, and kills it there. */
  async function killAt(killPoint: "before-commit" | "after-commit") {
    const child = forkFixture("tx-worker.ts", { DATABASE_URL: t.db.url, WORKER_ID: "doomed", KILL_POINT: killPoint });
    const messages: { type: string; id?: number }[] = [];
    child.on("message", (m: { type: string; id?: number }) => messages.push(m));
    const message = (type: string) =>
      new Promise<{ id?: number }>((resolve) => {
        const seen = messages.find((m) => m.type === type);
        if (seen) return resolve(seen);
        child.on("message", (m: { type: string; id?: number }) => m.type === type && resolve(m));
      });
    await message("ready");
    const { id } = await t.punctual.enqueue(makeTxTask(() => t.db.pool), { n: 6 });
    expect((await message(killPoint)).id).toBe(id);
    child.kill("SIGKILL");
    await exited(child);
    return id;
  }

  it("SIGKILL between the write and its commit: after rescue the write exists exactly once", async () => {
    const id = await killAt("before-commit");
    // A second worker takes the job back once the dead one's lease expires, and runs it.
    const worker = t.startWorker({ tasks: [makeTxTask(() => t.db.pool)], rescueIntervalMs: 100, leaseMs: 1000 });
    const rescued = next(worker, "job:rescued");
    const succeeded = next(worker, "job:succeeded");
    expect((await rescued)[0]).toMatchObject({ id, previousOwner: "doomed" });
    await succeeded;
    expect(await effects(id)).toEqual([{ attempt: 2 }]);
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 2 });
  });

  it("SIGKILL right after the commit, before the worker heard of it: the job is done and never runs again", async () => {
    const id = await killAt("after-commit");
    expect(await jobRow(id)).toMatchObject({ state: "succeeded", attempts: 1 });
    // Another worker, claiming and rescuing, finds nothing to run.
    const worker = t.startWorker({ tasks: [makeTxTask(() => t.db.pool)], rescueIntervalMs: 100, leaseMs: 1000 });
    const claims = collect(worker, "worker:poll", 3);
    const rescues: unknown[] = [];
    worker.on("job:rescued", (job) => rescues.push(job));
    for (const [info] of await claims) expect(info.claimed).toBe(0);
    expect(rescues).toEqual([]);
    expect(await effects(id)).toEqual([{ attempt: 1 }]);
  });
});
