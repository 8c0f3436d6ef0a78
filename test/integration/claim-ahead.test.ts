/**
 * Claim-ahead (DESIGN.md, Performance shape): a worker buffers claimed jobs beyond its
 * free slots, within `concurrency + prefetch`, leased like running jobs, handed back
 * when they wait too long and on stop, visible in SQL, in priority order.
 *
 * Most tests fill the buffer the same way: one slot, fast jobs first (so the worker
 * learns that its slot starts jobs quickly and claims ahead), then a job whose handler
 * blocks until the test opens its gate, so the jobs claimed behind it wait in the buffer.
 */
import pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createWorker, defineTask, type Worker } from "../../src/index.js";
import { toQueryable } from "../../src/executor.js";
import { jobClaim } from "../../src/sql/jobs.js";
import { collect, next } from "../support/events.js";
import { exited, forkFixture } from "../support/processes.js";
import { workerHarness } from "../support/worker-harness.js";

const h = workerHarness();

/** A gate that blocking handlers wait on. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

function workTask(blocker: Promise<void>, starts: number[] = []) {
  return defineTask({
    name: "work",
    payload: z.object({ n: z.number(), block: z.boolean().optional() }),
    run: async ({ block }, { job }) => {
      starts.push(job.id);
      if (block) await blocker;
    },
  });
}

/** `warm` fast jobs, one blocking job, then `behind` fast jobs (ids in that order). */
async function enqueueWarmBlockBehind(task: ReturnType<typeof workTask>, warm: number, behind: number, priority = 0) {
  const jobs = [
    ...Array.from({ length: warm }, (_, n) => ({ task, payload: { n }, priority })),
    { task, payload: { n: warm, block: true }, priority },
    ...Array.from({ length: behind }, (_, n) => ({ task, payload: { n: warm + 1 + n }, priority })),
  ];
  const rows = await h.punctual.enqueueMany(jobs);
  return { blockerId: rows[warm]!.id, behindIds: rows.slice(warm + 1).map((r) => r.id) };
}

/** Polls the table until `query`'s first row's `n` passes `until`; returns the rows. */
async function waitForRows(query: string, values: unknown[], until: (n: number) => boolean) {
  for (;;) {
    const { rows } = await h.db.pool.query(query, values);
    if (until(Number(rows[0]?.n ?? 0))) return rows;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Jobs among $2 (those behind the blocking one) claimed by worker $1 and not started. */
const BUFFERED = `select count(*) as n, array_agg(id order by id) as ids from punctual.jobs
  where state = 'running' and locked_by = $1 and started_at is null and id = any($2)`;

describe("bound", () => {
  for (const prefetch of [8, 0]) {
    it(`a worker never holds more than concurrency + prefetch jobs (prefetch ${prefetch})`, async () => {
      const { open, opened } = gate();
      open();
      const task = workTask(opened);
      const total = prefetch > 0 ? 3000 : 1000;
      await h.punctual.enqueueMany(Array.from({ length: total }, (_, n) => ({ task, payload: { n } })));
      const worker = h.startWorker({ tasks: [task], concurrency: 2, prefetch, workerId: "bounded" });
      let most = 0;
      for (;;) {
        const { rows } = await h.db.pool.query(
          `select count(*) filter (where state = 'running' and locked_by = 'bounded') as held,
                  count(*) filter (where state = 'succeeded') as done
           from punctual.jobs`,
        );
        most = Math.max(most, Number(rows[0].held));
        if (Number(rows[0].done) === total) break;
      }
      expect(most).toBeLessThanOrEqual(2 + prefetch);
      // With a buffer, the worker did claim ahead (more held than slots at some point).
      if (prefetch > 0) expect(most).toBeGreaterThan(2);
      await worker.stop();
      const { rows } = await h.db.pool.query("select count(*) as n from punctual.jobs where attempts <> 1 or started_at is null");
      expect(Number(rows[0].n)).toBe(0);
    });
  }
});

describe("handlers that return at once", () => {
  /** A task whose handler returns without awaiting anything. */
  const instantTask = (run: () => void) => defineTask({ name: "instant", payload: z.object({ n: z.number() }), run });

  it("a buffer of thousands of jobs whose handlers return synchronously runs them all (each freed slot is filled by a loop, not a call deeper)", async () => {
    const total = 8000;
    let ran = 0;
    const task = instantTask(() => {
      ran++;
    });
    for (let i = 0; i < total; i += 1000) {
      await h.punctual.enqueueMany(Array.from({ length: 1000 }, (_, k) => ({ task, payload: { n: i + k } })));
    }
    const worker = h.startWorker({ tasks: [task], concurrency: 1, prefetch: total });
    const errors: unknown[] = [];
    worker.on("worker:error", (error) => errors.push(error));
    const claims: number[] = [];
    worker.on("worker:poll", ({ claimed }) => claims.push(claimed));
    await collect(worker, "job:succeeded", total);
    expect(ran).toBe(total);
    expect(errors).toEqual([]);
    // The buffer did hold thousands at once: one claim brought more than 2,000 jobs.
    expect(Math.max(...claims)).toBeGreaterThan(2000);
  });

  it("the next claim is in flight while they run: the buffer is not drained before it is sent", async () => {
    const total = 5000;
    // Claims in flight, seen on the worker's own pool (a real one, counting the claim
    // statements it sends by their prepared names).
    let claimsInFlight = 0;
    let claimsSent = 0;
    let startedDuringClaim = 0;
    const task = instantTask(() => {
      if (claimsInFlight > 0) startedDuringClaim++;
    });
    await h.punctual.enqueueMany(Array.from({ length: total }, (_, n) => ({ task, payload: { n } })));
    const pool = new pg.Pool({ connectionString: h.db.url, max: 4 });
    const query = pool.query.bind(pool) as (config: pg.QueryConfig) => Promise<pg.QueryResult>;
    pool.query = ((config: pg.QueryConfig) => {
      if (!/^punctual_(complete_)?claim/.test(config.name ?? "")) return query(config);
      claimsSent++;
      claimsInFlight++;
      return query(config).finally(() => claimsInFlight--);
    }) as typeof pool.query;
    try {
      const worker = h.startWorker({ tasks: [task], pool, concurrency: 10, prefetch: 200 });
      await collect(worker, "job:succeeded", total);
      await worker.stop();
    } finally {
      await pool.end();
    }
    expect(claimsSent).toBeGreaterThan(total / 210);
    // Handlers that return at once would otherwise run the whole buffer as soon as a
    // claim answers, and the next claim would go out only then: claim, run, claim.
    expect(startedDuringClaim).toBeGreaterThan(total / 5);
  });
});

describe("a full buffer", () => {
  it("buffered rows show as claimed, not started; they start and succeed once the slot frees, every start recorded", async () => {
    const { open, opened } = gate();
    const task = workTask(opened);
    const { blockerId, behindIds } = await enqueueWarmBlockBehind(task, 200, 30);
    h.startWorker({ tasks: [task], concurrency: 1, prefetch: 20, workerId: "visible", leaseMs: 60_000, bufferHoldMs: 30_000 });
    const [buffered] = await waitForRows(BUFFERED, ["visible", behindIds], (n) => n > 0);
    // The README's "what runs now" query shows the blocked handler (started from the
    // buffer: its start is written by an early lease renewal), and only it.
    const [running] = await waitForRows(
      `select count(*) as n, array_agg(id) as ids from punctual.jobs
       where state = 'running' and locked_by = 'visible' and started_at is not null`,
      [],
      (n) => n > 0,
    );
    expect(running.ids.map(Number)).toEqual([blockerId]);
    open();
    await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded'", [], (n) => n === 231);
    const { rows } = await h.db.pool.query(
      "select count(*) as n from punctual.jobs where attempts <> 1 or started_at is null or started_at > finished_at or started_at < run_at",
    );
    expect(Number(rows[0].n)).toBe(0);
  });

  it("a buffered job not started within bufferHoldMs goes back to pending, its attempt given back, while the slot is still busy", async () => {
    const { open, opened } = gate();
    const task = workTask(opened);
    const { blockerId, behindIds } = await enqueueWarmBlockBehind(task, 200, 30);
    h.startWorker({ tasks: [task], concurrency: 1, prefetch: 20, workerId: "holder", bufferHoldMs: 300 });
    const [buffered] = await waitForRows(BUFFERED, ["holder", behindIds], (n) => n > 0);
    // Handed back: pending again, as if never claimed.
    await waitForRows(
      "select count(*) as n from punctual.jobs where id = any($1) and state = 'pending' and attempts = 0 and locked_by is null",
      [buffered.ids],
      (n) => n === buffered.ids.length,
    );
    const { rows } = await h.db.pool.query("select state, started_at from punctual.jobs where id = $1", [blockerId]);
    expect(rows[0].state).toBe("running");
    open();
    await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded' and attempts = 1", [], (n) => n === 231);
  });

  it("a hand-back whose answer is lost is not sent again: its jobs wait out their lease and each runs once", async () => {
    // The first hand-back commits, and its answer never comes (the connection dies). Sent
    // again, it could find those jobs claimed anew by this worker in the same attempt
    // (the first gave it back) and hand back jobs that run.
    const handBacks: string[][] = [];
    class AnswerLosingPool extends pg.Pool {
      override query(...args: unknown[]): never {
        const [config, values] = args as [pg.QueryConfig, unknown[] | undefined];
        const ran = (super.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values);
        if (!config.text.includes("greatest(j.attempts - 1, 0)")) return ran as never;
        const [ids, attempts] = (config.values ?? values ?? []).slice(1) as [number[], number[]];
        handBacks.push(ids.map((id, i) => `${id}/${attempts[i]}`));
        if (handBacks.length > 1) return ran as never;
        return ran.then(() => Promise.reject(new Error("Connection terminated unexpectedly"))) as never;
      }
    }
    const pool = new AnswerLosingPool({ connectionString: h.db.url, max: 6 });
    pool.on("error", () => {});
    const { open, opened } = gate();
    const starts: number[] = [];
    const task = workTask(opened, starts);
    const { behindIds } = await enqueueWarmBlockBehind(task, 200, 30);
    const worker = h.startWorker({ pool, tasks: [task], concurrency: 1, prefetch: 20, workerId: "loser", bufferHoldMs: 300, leaseMs: 1000, rescueIntervalMs: 50 });
    const [buffered] = await waitForRows(BUFFERED, ["loser", behindIds], (n) => n > 0);
    // Handed back (the statement committed), though the worker never heard so.
    await waitForRows(
      "select count(*) as n from punctual.jobs where id = any($1) and state = 'pending' and attempts = 0",
      [buffered.ids],
      (n) => n === buffered.ids.length,
    );
    open();
    await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded'", [], (n) => n === 231);
    await worker.stop();
    await pool.end();
    // No hand-back of a job's attempt went out twice, and no job started twice.
    const sent = handBacks.flat();
    expect(new Set(sent).size).toBe(sent.length);
    expect(new Set(starts).size).toBe(starts.length);
  });

  it("a cancel of a buffered job ends it cancelled without starting it", async () => {
    const { open, opened } = gate();
    const starts: number[] = [];
    const task = workTask(opened, starts);
    const { behindIds } = await enqueueWarmBlockBehind(task, 200, 30);
    h.startWorker({ tasks: [task], concurrency: 1, prefetch: 20, workerId: "canceller", leaseMs: 600_000, bufferHoldMs: 300_000 });
    const [buffered] = await waitForRows(BUFFERED, ["canceller", behindIds], (n) => n > 0);
    const target = Number(buffered.ids[0]);
    await h.db.pool.query("update punctual.jobs set key = 'cancel-me' where id = $1", [target]);
    await h.punctual.cancel("cancel-me");
    await waitForRows("select count(*) as n from punctual.jobs where id = $1 and state = 'cancelled'", [target], (n) => n === 1);
    open();
    await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded'", [], (n) => n === 230);
    const { rows } = await h.db.pool.query("select started_at, locked_by from punctual.jobs where id = $1", [target]);
    expect(rows[0]).toEqual({ started_at: null, locked_by: null });
    expect(starts).not.toContain(target);
  });

  it("stop hands the buffer back at once, attempts unchanged, while it still waits for the running handler", async () => {
    const { open, opened } = gate();
    const task = workTask(opened);
    const { blockerId, behindIds } = await enqueueWarmBlockBehind(task, 200, 30);
    // A hold bound longer than the test: only stop can hand the buffer back.
    const worker = h.startWorker({ tasks: [task], concurrency: 1, prefetch: 20, workerId: "stopper", leaseMs: 600_000, bufferHoldMs: 300_000 });
    const [buffered] = await waitForRows(BUFFERED, ["stopper", behindIds], (n) => n > 0);
    const stopped = worker.stop({ timeoutMs: 600_000 });
    await waitForRows(
      "select count(*) as n from punctual.jobs where id = any($1) and state = 'pending' and attempts = 0 and started_at is null",
      [buffered.ids],
      (n) => n === buffered.ids.length,
    );
    const { rows } = await h.db.pool.query("select state from punctual.jobs where id = $1", [blockerId]);
    expect(rows[0].state).toBe("running");
    open();
    await stopped;
    const { rows: after } = await h.db.pool.query("select state, attempts from punctual.jobs where id = $1", [blockerId]);
    expect(after[0]).toEqual({ state: "succeeded", attempts: 1 });
  });

  it("a second worker gets work at its first claim, and the first worker's buffered jobs after the hold bound", async () => {
    const { open, opened } = gate();
    const task = workTask(opened);
    const { behindIds } = await enqueueWarmBlockBehind(task, 200, 60);
    h.startWorker({ tasks: [task], concurrency: 1, prefetch: 20, workerId: "first", bufferHoldMs: 500 });
    const [buffered] = await waitForRows(BUFFERED, ["first", behindIds], (n) => n > 0);
    const starts: number[] = [];
    const second = createWorker({
      connectionString: h.db.url,
      tasks: [workTask(opened, starts)],
      workerId: "second",
      logger: pino({ level: "silent" }),
    });
    const firstClaim = next(second, "worker:poll");
    await second.start();
    expect((await firstClaim)[0].claimed).toBeGreaterThan(0);
    // Everything behind the blocked job runs, on the second worker, while the first
    // worker's only slot is still blocked: its buffer came back after the hold bound.
    await waitForRows(
      "select count(*) as n from punctual.jobs where id = any($1) and state = 'succeeded'",
      [behindIds],
      (n) => n === behindIds.length,
    );
    expect(buffered.ids.map(Number).every((id: number) => starts.includes(id))).toBe(true);
    open();
    await second.stop();
  });

  it("an urgent job enqueued behind a full buffer starts as soon as the slot frees after the hold bound", async () => {
    const { open, opened } = gate();
    const starts: number[] = [];
    const task = workTask(opened, starts);
    const { behindIds } = await enqueueWarmBlockBehind(task, 200, 30, 5);
    h.startWorker({ tasks: [task], concurrency: 1, prefetch: 20, workerId: "urgent", bufferHoldMs: 300 });
    const [buffered] = await waitForRows(BUFFERED, ["urgent", behindIds], (n) => n > 0);
    const [urgent] = await h.punctual.enqueueMany([{ task, payload: { n: -1 }, priority: -10 }]);
    await waitForRows(
      "select count(*) as n from punctual.jobs where id = any($1) and state = 'pending'",
      [buffered.ids],
      (n) => n === buffered.ids.length,
    );
    // And the rest of the buffer: a claim answered after the rows above were read went
    // back on its own hold bound, a round of the hand-back timer later.
    await waitForRows(BUFFERED, ["urgent", behindIds], (n) => n === 0);
    const before = starts.length;
    open();
    await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded'", [], (n) => n === 232);
    expect(starts[before]).toBe(urgent!.id);
  });
});

it("SIGKILL with a full buffer: every buffered job runs once, on another worker, after the lease", async () => {
  const doomed = forkFixture("buffer-worker.ts", { DATABASE_URL: h.db.url, WORKER_ID: "doomed-buffer" });
  await new Promise<void>((resolve) => doomed.once("message", () => resolve()));
  const startedByDoomed = new Set<number>();
  doomed.on("message", (m: { type: string; id: number }) => m.type === "started" && startedByDoomed.add(m.id));
  const task = workTask(Promise.resolve());
  const { blockerId, behindIds } = await enqueueWarmBlockBehind(task, 200, 30);
  const [buffered] = await waitForRows(BUFFERED, ["doomed-buffer", behindIds], (n) => n > 0);
  doomed.kill("SIGKILL");
  expect(await exited(doomed)).toBe("SIGKILL");
  const bufferedIds: number[] = buffered.ids.map(Number);
  expect(bufferedIds.some((id) => startedByDoomed.has(id))).toBe(false);

  const starts: number[] = [];
  const survivor: Worker = createWorker({
    connectionString: h.db.url,
    tasks: [workTask(Promise.resolve(), starts)],
    rescueIntervalMs: 100,
    pollIntervalMs: 50,
    logger: pino({ level: "silent" }),
  });
  const rescued = collect(survivor, "job:rescued", 1);
  await survivor.start();
  await rescued;
  await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded'", [], (n) => n === 231);
  await survivor.stop();
  for (const id of [...bufferedIds, blockerId]) expect(starts.filter((s) => s === id)).toHaveLength(1);
});

describe("claimed early (claimLeadMs)", () => {
  it("the claim takes jobs due within the lead, not started, and none due later; lead 0 takes only due jobs", async () => {
    const db = toQueryable(h.db.pool);
    const task = workTask(Promise.resolve());
    const [soon, later] = await h.punctual.enqueueMany([
      { task, payload: { n: 1 }, delay: "30s" },
      { task, payload: { n: 2 }, delay: "120s" },
    ]);
    const params = { workerId: "early", queues: ["default"], tasks: ["work"], limit: 10, leaseMs: 60_000 };

    expect(await jobClaim(db, params)).toEqual([]);
    const claimed = await jobClaim(db, { ...params, leadMs: 60_000 });
    expect(claimed.map((r) => [Number(r.id), r.started])).toEqual([[soon!.id, false]]);
    const { rows } = await h.db.pool.query("select id, state, started_at, attempts from punctual.jobs order by id");
    expect(rows).toEqual([
      { id: String(soon!.id), state: "running", started_at: null, attempts: 1 },
      { id: String(later!.id), state: "pending", started_at: null, attempts: 0 },
    ]);
  });

  it("a job claimed before its run_at waits in the buffer, claimed and not started, and starts on its run_at, never before", async () => {
    const starts: { id: number; at: number }[] = [];
    const task = defineTask({
      name: "work",
      payload: z.object({ n: z.number() }),
      run: (_, { job }) => void starts.push({ id: job.id, at: Date.now() }),
    });
    const worker = h.startWorker({ tasks: [task], claimLeadMs: 1000, workerId: "early-bird" });
    await next(worker, "worker:poll");
    const polls = collect(worker, "worker:poll", 1, (info) => info.claimed > 0);
    const [job] = await h.punctual.enqueueMany([{ task, payload: { n: 1 }, delay: 900 }]);
    await polls;

    // Claimed (the claim answered), and its run_at is still ahead by the database's clock.
    const { rows: before } = await h.db.pool.query(
      "select state, locked_by, started_at, run_at > clock_timestamp() as ahead from punctual.jobs where id = $1",
      [job!.id],
    );
    expect(before).toEqual([{ state: "running", locked_by: "early-bird", started_at: null, ahead: true }]);

    await waitForRows("select count(*) as n from punctual.jobs where state = 'succeeded'", [], (n) => n === 1);
    const { rows: after } = await h.db.pool.query("select run_at, started_at from punctual.jobs where id = $1", [job!.id]);
    expect(starts).toHaveLength(1);
    expect(starts[0]!.at).toBeGreaterThanOrEqual(after[0].run_at.getTime());
    expect(after[0].started_at.getTime()).toBeGreaterThanOrEqual(after[0].run_at.getTime());
  });

  it("with prefetch 0 (no buffer to wait in) nothing is claimed before its run_at, whatever the lead", async () => {
    const task = defineTask({ name: "work", payload: z.object({ n: z.number() }), run: () => {} });
    const worker = h.startWorker({ tasks: [task], prefetch: 0, claimLeadMs: 1000 });
    await next(worker, "worker:poll");
    const claimedAt = new Promise<number>((resolve) => worker.on("worker:poll", ({ claimed }) => claimed > 0 && resolve(Date.now())));
    const [job] = await h.punctual.enqueueMany([{ task, payload: { n: 1 }, delay: 500 }]);

    expect(await claimedAt).toBeGreaterThanOrEqual(job!.runAt.getTime());
  });

  it("refuses a lead beyond the buffer's hold bound or 1 s, naming the option; the default lead fits any hold bound", () => {
    const task = workTask(Promise.resolve());
    expect(() => createWorker({ connectionString: h.db.url, tasks: [task], claimLeadMs: 600, bufferHoldMs: 500 })).toThrow(
      /claimLeadMs: must be at most bufferHoldMs \(500\), got 600/,
    );
    expect(() => createWorker({ connectionString: h.db.url, tasks: [task], claimLeadMs: 2000 })).toThrow(/claimLeadMs/);
    // Unset, the lead follows a short hold bound down (leaseMs 100: bufferHoldMs 25).
    expect(() => createWorker({ connectionString: h.db.url, tasks: [task], leaseMs: 100 })).not.toThrow();
  });
});
