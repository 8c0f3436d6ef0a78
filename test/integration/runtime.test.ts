import pg from "pg";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineTask, type Worker } from "../../src/index.js";
import { toQueryable } from "../../src/executor.js";
import { LeaseRescuer } from "../../src/maintenance/lease-rescuer.js";
import { Pruner } from "../../src/maintenance/pruner.js";
import { workerHarness } from "../support/worker-harness.js";
import { collect, next } from "../support/events.js";

const t = workerHarness({});
const startWorker = t.startWorker;

const quick = defineTask({ name: "quick", payload: z.object({ n: z.number().optional() }), run: () => {} });

describe("wake-ups", () => {
  it("a job due in 300 ms starts on time, woken by a timer or NOTIFY, not by polling", async () => {
    const worker = startWorker({ tasks: [quick], pollIntervalMs: 600_000 });
    await next(worker, "worker:poll"); // the first claim, at start, found nothing
    const reasons: string[] = [];
    worker.on("worker:poll", ({ reason, claimed }) => claimed > 0 && reasons.push(reason));
    const { id, runAt } = await t.punctual.enqueue(quick, {}, { delay: 300 });
    // Claimed early (claimLeadMs), it starts from the buffer: its started_at is written with its outcome.
    await next(worker, "job:succeeded");
    expect(reasons).toHaveLength(1);
    expect(["timer", "notify"]).toContain(reasons[0]);
    const job = await t.punctual.get(id);
    expect(job!.startedAt!.getTime()).toBeGreaterThanOrEqual(runAt.getTime());
    // A 10-minute poll interval could not have started it before the wake-up did.
    expect(job!.startedAt!.getTime() - runAt.getTime()).toBeLessThan(600_000);
  });

  it("a job due now wakes an idle worker through NOTIFY", async () => {
    const worker = startWorker({ tasks: [quick], pollIntervalMs: 600_000 });
    await next(worker, "worker:poll");
    const poll = next(worker, "worker:poll", ({ claimed }) => claimed > 0);
    await t.punctual.enqueue(quick, {});
    expect((await poll)[0].reason).toBe("notify");
  });

  it("a bulk insert sends one notification, not one per row", async () => {
    const listener = new pg.Client({ connectionString: t.db.url });
    await listener.connect();
    const payloads: string[] = [];
    listener.on("notification", (m) => payloads.push(m.payload!));
    await listener.query("listen punctual_jobs");
    await t.punctual.enqueueMany(Array.from({ length: 1000 }, (_, n) => ({ task: quick, payload: { n } })));
    await listener.query("select 1"); // a round trip, after which the notification has arrived
    await listener.end();
    expect(payloads).toHaveLength(1);
  });

  it("a bulk insert into two queues sends one notification per queue, naming it", async () => {
    const listener = new pg.Client({ connectionString: t.db.url });
    await listener.connect();
    const payloads: { run_at: string; queue: string }[] = [];
    listener.on("notification", (m) => payloads.push(JSON.parse(m.payload!)));
    await listener.query("listen punctual_jobs");
    await t.punctual.enqueueMany(
      Array.from({ length: 100 }, (_, n) => ({ task: quick, payload: { n }, queue: n % 2 ? "odd" : "even" })),
    );
    await listener.query("select 1");
    await listener.end();
    expect(payloads.map((p) => p.queue).sort()).toEqual(["even", "odd"]);
  });

  it("an idle worker is not woken by jobs of a queue it does not serve", async () => {
    const worker = startWorker({ tasks: [quick], queues: ["mine"], pollIntervalMs: 600_000 });
    // Both awaited together: either may come first.
    await Promise.all([next(worker, "worker:listening"), next(worker, "worker:poll")]); // the start claim found nothing
    const polls: { claimed: number; reason: string }[] = [];
    worker.on("worker:poll", (poll) => polls.push(poll));
    await t.punctual.enqueue(quick, { n: 1 }, { queue: "theirs" });
    const claimed = next(worker, "job:claimed");
    await t.punctual.enqueue(quick, { n: 2 }, { queue: "mine" });
    await claimed;
    // The only claim after start was for "mine": "theirs" woke no one here.
    expect(polls[0]).toMatchObject({ claimed: 1, reason: "notify" });
  });

  it("claims and completions notify no one; a retry or a debounce that leaves a row pending does", async () => {
    const listener = new pg.Client({ connectionString: t.db.url });
    await listener.connect();
    const payloads: { run_at: string }[] = [];
    listener.on("notification", (m) => payloads.push(JSON.parse(m.payload!)));
    await listener.query("listen punctual_jobs");
    const roundTrip = () => listener.query("select 1"); // after it, notifications sent before have arrived
    let fails = 1;
    const flaky = defineTask({
      name: "flaky",
      payload: z.object({}),
      backoff: { baseMs: 60_000 },
      run: () => {
        if (fails-- > 0) throw new Error("once");
      },
    });
    const worker = startWorker({ tasks: [quick, flaky] });
    await next(worker, "worker:poll");
    await t.punctual.enqueue(quick, {});
    await next(worker, "job:succeeded");
    await roundTrip();
    expect(payloads).toHaveLength(1); // the insert; not the claim, not the completion
    await t.punctual.enqueue(flaky, {});
    const [, { runAt }] = await next(worker, "job:retried");
    await roundTrip();
    expect(payloads).toHaveLength(3); // the insert, then the retry, due in about a minute
    expect(Math.abs(Date.parse(payloads[2]!.run_at) - runAt.getTime())).toBeLessThan(5_000);
    const later = new Date(Date.now() + 3_600_000);
    await t.punctual.enqueue(quick, {}, { key: "debounced", runAt: later });
    await t.punctual.enqueue(quick, {}, { key: "debounced", runAt: new Date(later.getTime() + 1000) });
    await roundTrip();
    await listener.end();
    expect(payloads.slice(3).map((p) => Date.parse(p.run_at))).toEqual([later.getTime(), later.getTime() + 1000]);
  });

  it("prepare: false leaves no prepared statement on the connection (PgBouncer < 1.21)", async () => {
    const prepared = async (prepare: boolean) => {
      const pool = new pg.Pool({ connectionString: t.db.url, max: 1 });
      const worker = startWorker({ tasks: [quick], pool, prepare, listen: false });
      await t.punctual.enqueueMany([{ task: quick, payload: {} }, { task: quick, payload: {} }]);
      await collect(worker, "job:succeeded", 2);
      await worker.stop();
      const { rows } = await pool.query("select name from pg_prepared_statements order by name");
      await pool.end();
      return rows.map((r) => r.name as string);
    };
    expect(await prepared(true)).toEqual(expect.arrayContaining([expect.stringMatching(/^punctual_claim_\d+$|^punctual_complete/)]));
    expect(await prepared(false)).toEqual([]);
  });

  it("poll-only mode (no LISTEN, for PgBouncer) still starts a known future job by timer", async () => {
    await t.punctual.enqueue(quick, {}, { delay: 300 });
    const worker = startWorker({ tasks: [quick], pollIntervalMs: 600_000, listen: false });
    const [{ reason }] = await next(worker, "worker:poll", ({ claimed }) => claimed > 0);
    expect(reason).toBe("timer");
  });
});

describe("leases", () => {
  it("a worker whose lease was taken over aborts the handler and records nothing", async () => {
    let aborted: unknown;
    const held = defineTask({
      name: "held",
      payload: z.object({}),
      run: (_p, { signal }) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener("abort", () => {
            aborted = signal.reason;
            reject(signal.reason);
          }),
        ),
    });
    const { id } = await t.punctual.enqueue(held, {});
    const worker = startWorker({ tasks: [held], heartbeatIntervalMs: 20 });
    await next(worker, "job:claimed");
    await t.db.pool.query("update punctual.jobs set locked_by = 'another-worker' where id = $1", [id]);
    const [lost] = await next(worker, "job:lost");
    expect(lost.id).toBe(id);
    expect(String(aborted)).toMatch(/lease lost/);
    expect(await t.punctual.get(id)).toMatchObject({ state: "running", lockedBy: "another-worker", lastError: null });
  });

  it("cancel while running aborts the handler's signal", async () => {
    const held = defineTask({
      name: "cancellable",
      payload: z.object({}),
      run: (_p, { signal }) =>
        new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
    });
    await t.punctual.enqueue(held, {}, { key: "cancel-me" });
    const worker = startWorker({ tasks: [held], heartbeatIntervalMs: 20 });
    await next(worker, "job:claimed");
    await t.punctual.cancel("cancel-me");
    const [, { error, state }] = await next(worker, "job:failed");
    expect(error.message).toBe("cancelled");
    expect(state).toBe("cancelled");
    expect((await t.punctual.get("cancel-me"))?.state).toBe("cancelled");
  });

  it("leases are renewed while a handler runs longer than the lease", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const long = defineTask({ name: "long", payload: z.object({}), run: () => gate });
    const { id } = await t.punctual.enqueue(long, {});
    const worker = startWorker({ tasks: [long], leaseMs: 300, heartbeatIntervalMs: 50, rescueIntervalMs: 50 });
    await next(worker, "job:claimed");
    const first = (await t.punctual.get(id))!.lockedUntil!;
    // Wait for renewals through the lease's own time: it moves forward, and nobody rescues it.
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve) => {
        const check = setInterval(async () => {
          const until = (await t.punctual.get(id))!.lockedUntil;
          if (until && until.getTime() > first.getTime() + (i + 1) * 300) {
            clearInterval(check);
            resolve();
          }
        }, 25);
      });
    }
    release();
    await next(worker, "job:succeeded");
    expect(await t.punctual.get(id)).toMatchObject({ state: "succeeded", attempts: 1 });
  });

  it("rescue takes expired leases back in bounded batches; a periodic one that ends gets its successor", async () => {
    const rows = Array.from({ length: 25 }, (_, n) => `('quick', '{"n": ${n}}', 'running', 1, 5, 'dead', now() - interval '1 minute')`);
    await t.db.pool.query(
      `insert into punctual.jobs (task, payload, state, attempts, max_attempts, locked_by, locked_until) values ${rows.join(",")}`,
    );
    await t.db.pool.query(
      `insert into punctual.jobs (task, key, every_ms, slot_at, state, attempts, max_attempts, locked_by, locked_until)
       values ('quick', 'periodic', 60000, now() - interval '2 minutes', 'running', 3, 3, 'dead', now() - interval '1 minute'),
              ('quick', 'alive', null, null, 'running', 1, 5, 'alive-worker', now() + interval '1 hour')`,
    );
    const counts = await new LeaseRescuer(toQueryable(t.db.pool), 10).runOnce();
    expect(counts).toMatchObject({ rescued: 26, ended: 1 });
    const { rows: after } = await t.db.pool.query(
      "select key, state, count(*)::int as n, bool_and(locked_by is null) as unlocked from punctual.jobs group by key, state order by key, state",
    );
    expect(after).toEqual([
      { key: "alive", state: "running", n: 1, unlocked: false },
      { key: "periodic", state: "pending", n: 1, unlocked: true }, // the successor, to be placed
      { key: "periodic", state: "failed", n: 1, unlocked: true },
      { key: null, state: "pending", n: 25, unlocked: true },
    ]);
  });
});

describe("retention", () => {
  it("prunes finished rows past retention in batches and leaves live and recent rows alone", async () => {
    await t.db.pool.query(`
      insert into punctual.jobs (task, state, finished_at)
      select 'quick', (array['succeeded', 'failed', 'cancelled'])[1 + g % 3]::punctual.job_state, now() - interval '2 days'
      from generate_series(1, 250) g`);
    await t.db.pool.query(`insert into punctual.jobs (task, state, finished_at) select 'quick', 'succeeded', now() from generate_series(1, 10)`);
    await t.db.pool.query(`insert into punctual.jobs (task, state) select 'quick', 'pending' from generate_series(1, 10)`);
    await t.db.pool.query(`insert into punctual.jobs (task, state, locked_by, locked_until) select 'quick', 'running', 'w', now() + interval '1 hour' from generate_series(1, 5)`);
    const counts = await new Pruner(toQueryable(t.db.pool), 86_400_000, 100).runOnce();
    expect(counts).toEqual({ deleted: 250, batches: 3 });
    const { rows } = await t.db.pool.query("select state, count(*)::int as n from punctual.jobs group by state order by state");
    expect(rows).toEqual([
      { state: "pending", n: 10 },
      { state: "running", n: 5 },
      { state: "succeeded", n: 10 },
    ]);
  });

  it("retention 0: a one-off job's row is deleted as its success is recorded; failures and periodic occurrences wait for the prune, and the next occurrence is inserted", async () => {
    const failing = defineTask({ name: "failing", payload: z.object({}), maxAttempts: 1, run: () => { throw new Error("no"); } });
    // No prune round during the test: whatever is deleted, the success statement deleted.
    const worker = startWorker({ tasks: [quick, failing], retention: 0, pruneIntervalMs: 3_600_000 });
    const seen = new Set<number | string>();
    let allSeen!: () => void;
    const succeeded = new Promise<void>((resolve) => (allSeen = resolve));
    const expected = new Set<number | string>(["tick"]);
    const check = () => [...expected].every((k) => seen.has(k)) && allSeen();
    worker.on("job:succeeded", (job) => {
      seen.add(job.key ?? job.id);
      check();
    });
    const failed = next(worker, "job:failed");
    const jobs = await t.punctual.enqueueMany(Array.from({ length: 50 }, (_, n) => ({ task: quick, payload: { n } })));
    for (const job of jobs) expected.add(job.id);
    const { id: failedId } = await t.punctual.enqueue(failing, {});
    await t.punctual.schedule("tick", quick, {}, { every: 100 });
    check();
    await Promise.all([succeeded, failed]);
    await worker.stop();
    const { rows } = await t.db.pool.query(
      `select coalesce(key, 'one-off') as kind, state, count(*)::int as n from punctual.jobs
       where id = any($1) or id = $2 or key = 'tick' group by 1, 2 order by 1, 2`,
      [jobs.map((j) => j.id), failedId],
    );
    // The 50 one-off rows are gone; the failure and the schedule's occurrences are kept
    // (for the prune), and its next occurrence waits.
    expect(rows.filter((r) => r.kind !== "tick")).toEqual([{ kind: "one-off", state: "failed", n: 1 }]);
    expect(rows.filter((r) => r.kind === "tick").map((r) => r.state)).toEqual(["pending", "succeeded"]);
    expect(rows.find((r) => r.kind === "tick" && r.state === "pending").n).toBe(1);
  });

  it("workers prune on their own", async () => {
    await t.db.pool.query(`insert into punctual.jobs (task, state, finished_at) select 'quick', 'succeeded', now() - interval '1 hour' from generate_series(1, 30)`);
    const worker = startWorker({ tasks: [quick], retention: "1m", pruneIntervalMs: 20 });
    const [counts] = await next(worker, "worker:pruned");
    expect(counts.deleted).toBe(30);
  });
});

/** Resolves once the table holds `n` succeeded jobs, checked after each outcome event. */
function allSucceeded(worker: Worker, n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = async () => {
      const { rows } = await t.db.pool.query("select count(*)::int as n from punctual.jobs where state = 'succeeded'").catch(() => ({ rows: [{ n: 0 }] }));
      if (rows[0].n === n) {
        worker.off("job:succeeded", check).off("job:lost", check).off("job:rescued", check);
        resolve();
      }
    };
    worker.on("job:succeeded", check).on("job:lost", check).on("job:rescued", check);
    void check();
  });
}

describe("connection faults", () => {
  it("pg_terminate_backend on every worker connection mid-run: the worker reconnects (LISTEN too) and finishes the work", async () => {
    const work = defineTask({
      name: "work",
      payload: z.object({ n: z.number() }),
      run: () => new Promise((resolve) => setTimeout(resolve, 2)),
    });
    // A short lease: a claim or outcome whose reply died with its connection may have
    // committed unseen; such jobs come back through lease expiry and rescue.
    const worker = startWorker({ tasks: [work], pollIntervalMs: 50, leaseMs: 1000, heartbeatIntervalMs: 100, rescueIntervalMs: 100 });
    worker.on("worker:error", () => {}); // expected while connections die
    const firstFifty = collect(worker, "job:succeeded", 50);
    await t.punctual.enqueueMany(Array.from({ length: 300 }, (_, n) => ({ task: work, payload: { n } })));
    await firstFifty;
    const reconnected = next(worker, "worker:listening", ({ reconnected }) => reconnected);
    const admin = new pg.Client({ connectionString: t.db.url });
    await admin.connect();
    const { rows } = await admin.query(
      "select count(pg_terminate_backend(pid))::int as killed from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    await admin.end();
    expect(rows[0].killed).toBeGreaterThan(1);
    await reconnected;
    await allSucceeded(worker, 300);
    const { rows: states } = await t.db.pool.query("select state, count(*)::int as n from punctual.jobs group by state");
    expect(states).toEqual([{ state: "succeeded", n: 300 }]);
  });
});
