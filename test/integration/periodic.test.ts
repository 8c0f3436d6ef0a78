import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClient, defineTask } from "../../src/index.js";
import { workerHarness } from "../support/worker-harness.js";
import { collect, next } from "../support/events.js";

const t = workerHarness({ pollIntervalMs: 10 });
const startWorker = t.startWorker;

const runs: { slot: Date | null; late: boolean; attempt: number }[] = [];
const tick = defineTask({
  name: "tick",
  payload: z.object({ label: z.string() }),
  run: (_payload, { job }) => void runs.push({ slot: job.slot, late: job.late, attempt: job.attempt }),
});
afterEach(() => void runs.splice(0));

async function rowsOf(key: string) {
  const { rows } = await t.db.pool.query(
    "select id, state, slot_at, run_at, attempts, last_error, payload, cron, tz, every_ms from punctual.jobs where key = $1 order by id",
    [key],
  );
  return rows;
}

const iso = (d: Date) => d.toISOString();

describe("running a schedule", () => {
  it("an interval schedule that ran 5 times left one live row and exactly the rule's slots", async () => {
    const startAt = new Date(Date.now() + 100);
    await t.punctual.schedule("tick:grid", tick, { label: "grid" }, { every: "200ms", missed: "all" }, { startAt });
    const worker = startWorker({ tasks: [tick] });
    await collect(worker, "job:succeeded", 5);
    await worker.stop();
    const rows = await rowsOf("tick:grid");
    // Five or more runs (the worker may start another before it stops), then one live row.
    const grid = rows.map((_, k) => iso(new Date(startAt.getTime() + k * 200)));
    expect(rows.length).toBeGreaterThanOrEqual(6);
    expect(rows.map((r) => iso(r.slot_at))).toEqual(grid); // no gap, no duplicate
    expect(rows.map((r) => r.state)).toEqual([...Array(rows.length - 1).fill("succeeded"), "pending"]);
    expect(runs.map((r) => iso(r.slot!))).toEqual(grid.slice(0, -1));
  });

  it("a cron schedule with seconds runs on consecutive seconds", async () => {
    await t.punctual.schedule("tick:cron", tick, { label: "cron" }, { cron: "* * * * * *", missed: "all" });
    const worker = startWorker({ tasks: [tick] });
    await collect(worker, "job:succeeded", 3);
    await worker.stop();
    const slots = (await rowsOf("tick:cron")).map((r) => r.slot_at.getTime());
    expect(slots.length).toBeGreaterThanOrEqual(4);
    expect(slots.every((s) => s % 1000 === 0)).toBe(true);
    expect(new Set(slots.slice(1).map((s, i) => s - slots[i]!))).toEqual(new Set([1000]));
  });

  it("a final failure still inserts the next occurrence", async () => {
    const broken = defineTask({
      name: "broken-periodic",
      payload: z.object({}),
      maxAttempts: 1,
      run: () => {
        throw new Error("upstream down");
      },
    });
    const startAt = new Date(Date.now() + 50);
    await t.punctual.schedule("broken", broken, {}, { every: "200ms", missed: "all" }, { startAt });
    const worker = startWorker({ tasks: [broken] });
    await collect(worker, "job:failed", 2);
    await worker.stop();
    const rows = await rowsOf("broken");
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.map((r) => r.state)).toEqual([...Array(rows.length - 1).fill("failed"), "pending"]);
    expect(rows[0].last_error).toBe("upstream down");
    expect(rows.map((r) => r.slot_at.getTime() - startAt.getTime())).toEqual(rows.map((_, k) => k * 200));
  });

  it("retries keep the occurrence's slot; the handler sees it", async () => {
    let calls = 0;
    const flaky = defineTask({
      name: "flaky-periodic",
      payload: z.object({}),
      run: (_p, { job }) => {
        calls += 1;
        runs.push({ slot: job.slot, late: job.late, attempt: job.attempt });
        if (calls === 1) throw new Error("once");
      },
    });
    const startAt = new Date(Date.now() + 20);
    await t.punctual.schedule("flaky", flaky, {}, { every: "1h" }, { startAt });
    const worker = startWorker({ tasks: [flaky], backoff: { baseMs: 1 } });
    await next(worker, "job:succeeded");
    expect(runs.map((r) => [iso(r.slot!), r.attempt])).toEqual([
      [iso(startAt), 1],
      [iso(startAt), 2],
    ]);
    const rows = await rowsOf("flaky");
    expect(rows.map((r) => r.state)).toEqual(["succeeded", "pending"]);
    expect(rows[1].slot_at.getTime()).toBe(startAt.getTime() + 3_600_000);
  });

  it("cancel while the occurrence runs: it finishes, and nothing follows it", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = defineTask({ name: "slow-periodic", payload: z.object({}), run: () => gate });
    await t.punctual.schedule("slow", slow, {}, { every: "100ms" }, { startAt: new Date() });
    const worker = startWorker({ tasks: [slow] });
    await next(worker, "job:claimed");
    expect(await t.punctual.cancel("slow")).toMatchObject({ state: "running" });
    const succeeded = next(worker, "job:succeeded");
    release();
    await succeeded;
    const rows = await rowsOf("slow");
    expect(rows.map((r) => r.state)).toEqual(["succeeded"]);
  });
});

describe("changing schedules", () => {
  const daily = defineTask({ name: "daily", payload: z.object({ v: z.number() }), run: () => {} });

  it("a changed rule moves the pending occurrence; a changed payload alone does not", async () => {
    const first = await t.punctual.schedule("daily:1", daily, { v: 1 }, { cron: "0 8 * * *", tz: "Europe/Paris" });
    expect(first.outcome).toBe("inserted");
    const moved = await t.punctual.schedule("daily:1", daily, { v: 1 }, { cron: "0 9 * * *", tz: "Europe/Paris" });
    expect(moved).toMatchObject({ id: first.id, outcome: "updated" });
    // Moved to the new rule's next slot: the next 09:00 in Paris. (Not "an hour after the
    // first slot": between 08:00 and 09:00 in Paris the 08:00 slot is tomorrow's.)
    const paris = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    expect(paris.format(first.slotAt!)).toBe("08:00:00");
    expect(paris.format(moved.slotAt!)).toBe("09:00:00");
    expect(moved.slotAt!.getTime()).toBeGreaterThan(Date.now());
    expect(moved.slotAt!.getTime() - Date.now()).toBeLessThanOrEqual(25 * 3_600_000);
    const repaid = await t.punctual.schedule("daily:1", daily, { v: 2 }, { cron: "0 9 * * *", tz: "Europe/Paris" });
    expect(repaid).toMatchObject({ id: first.id, outcome: "updated" });
    expect(repaid.slotAt).toEqual(moved.slotAt);
    const same = await t.punctual.schedule("daily:1", daily, { v: 2 }, { cron: "0 9 * * *", tz: "Europe/Paris" });
    expect(same).toMatchObject({ id: first.id, outcome: "unchanged" });
    const rows = await rowsOf("daily:1");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ payload: { v: 2 }, cron: "0 9 * * *", state: "pending" });
  });

  it("a rule changed while an occurrence runs applies to the next one", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = defineTask({ name: "held", payload: z.object({ v: z.number() }), run: () => gate });
    await t.punctual.schedule("held", held, { v: 1 }, { every: "1h" }, { startAt: new Date() });
    const worker = startWorker({ tasks: [held] });
    await next(worker, "job:claimed");
    await t.punctual.schedule("held", held, { v: 2 }, { cron: "0 8 * * *", tz: "Asia/Tokyo" });
    const placed = next(worker, "job:placed");
    release();
    const [, { slot }] = await placed;
    const rows = await rowsOf("held");
    expect(rows.map((r) => r.state)).toEqual(["succeeded", "pending"]);
    expect(rows[1]).toMatchObject({ payload: { v: 2 }, cron: "0 8 * * *", tz: "Asia/Tokyo", attempts: 0 });
    expect(rows[1].slot_at).toEqual(slot);
    const { rows: local } = await t.db.pool.query("select to_char($1::timestamptz at time zone 'Asia/Tokyo', 'HH24:MI') as t", [slot]);
    expect(local[0].t).toBe("08:00");
  });
});

describe("missed runs after an outage", () => {
  // The schedule's first slot lies in the past, as if every worker had been down.
  const outage = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000);

  it("once (default): the overdue occurrence runs once, late; then the first slot after now", async () => {
    const startAt = outage(10.5);
    await t.punctual.schedule("missed:once", tick, { label: "once" }, { every: "1m" }, { startAt });
    const worker = startWorker({ tasks: [tick] });
    await next(worker, "job:succeeded");
    expect(runs).toEqual([{ slot: startAt, late: true, attempt: 1 }]);
    const rows = await rowsOf("missed:once");
    expect(rows.map((r) => r.state)).toEqual(["succeeded", "pending"]);
    expect(rows[1].slot_at.getTime() - startAt.getTime()).toBe(11 * 60_000);
  });

  it("skip: the missed occurrence does not run; the schedule moves to the first slot after now", async () => {
    const startAt = outage(10.5);
    await t.punctual.schedule("missed:skip", tick, { label: "skip" }, { every: "1m", missed: "skip" }, { startAt });
    const worker = startWorker({ tasks: [tick] });
    const [, { slot, next: nextSlot }] = await next(worker, "job:skipped");
    expect(slot).toEqual(startAt);
    expect(nextSlot.getTime() - startAt.getTime()).toBe(11 * 60_000);
    expect(runs).toEqual([]);
    const rows = await rowsOf("missed:skip");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: "pending", attempts: 0, slot_at: nextSlot });
  });

  it("all: each missed slot runs in turn, then the schedule is back on time", async () => {
    const startAt = outage(2.5);
    await t.punctual.schedule("missed:all", tick, { label: "all" }, { every: "1m", missed: "all" }, { startAt });
    const worker = startWorker({ tasks: [tick] });
    await collect(worker, "job:succeeded", 3);
    expect(runs.map((r) => (r.slot!.getTime() - startAt.getTime()) / 60_000)).toEqual([0, 1, 2]);
    expect(runs.map((r) => r.late)).toEqual([true, true, false]);
    const pending = (await rowsOf("missed:all")).filter((r) => r.state === "pending");
    expect(pending.map((r) => (r.slot_at.getTime() - startAt.getTime()) / 60_000)).toEqual([3]);
  });
});

describe("schedules from SQL", () => {
  it("punctual.schedule writes a row that a worker places on its first slot", async () => {
    await t.db.pool.query(
      `select punctual.schedule('todo-email:7', 'tick', '{"label": "sql"}', cron => '0 8 * * *', tz => 'America/New_York')`,
    );
    const worker = startWorker({ tasks: [tick] });
    const [, { slot }] = await next(worker, "job:placed");
    expect(runs).toEqual([]);
    const [row] = await rowsOf("todo-email:7");
    expect(row).toMatchObject({ state: "pending", attempts: 0, slot_at: slot, run_at: slot });
    const { rows } = await t.db.pool.query(
      "select to_char($1::timestamptz at time zone 'America/New_York', 'HH24:MI') as t, $1::timestamptz > now() as future, $1::timestamptz <= now() + interval '25 hours' as soon",
      [slot],
    );
    expect(rows[0]).toEqual({ t: "08:00", future: true, soon: true });
  });

  it("an invalid cron written by SQL fails clearly and ends the schedule", async () => {
    await t.db.pool.query(`select punctual.schedule('bad-cron', 'tick', '{"label": "x"}', cron => '0 25 * * *')`);
    const worker = startWorker({ tasks: [tick] });
    const [, { error }] = await next(worker, "job:failed");
    expect(error.message).toMatch(/^rule: cannot be evaluated: .*25/);
    expect((await rowsOf("bad-cron")).map((r) => r.state)).toEqual(["failed"]);
  });
});

describe("declared schedules", () => {
  const plans = defineTask({ name: "check-expired-plans", payload: z.object({}), run: () => {} });
  const todos = defineTask({ name: "extract-todos", payload: z.object({ batch: z.number() }), run: () => {} });
  const declared = [
    { key: "expired-plans", task: plans, payload: {}, rule: { every: 3_600_000 } },
    { key: "extract-todos", task: todos, payload: { batch: 50 }, rule: { every: "10m" } },
    { key: "weekly-report", task: plans, payload: {}, rule: { cron: "0 10 * * MON", tz: "Europe/Paris" } },
  ];

  it("ten reconcilers at once leave exactly one live row per key", async () => {
    const pools = Array.from({ length: 10 }, () => new pg.Pool({ connectionString: t.db.url, max: 1 }));
    try {
      const results = await Promise.all(pools.map((pool) => createClient({ executor: pool }).reconcileSchedules(declared)));
      expect(results.reduce((sum, r) => sum + r.inserted, 0)).toBe(3);
      expect(results.reduce((sum, r) => sum + r.unchanged, 0)).toBe(27);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const { rows } = await t.db.pool.query(
      "select key, count(*)::int as live from punctual.jobs where state in ('pending', 'running') group by key order by key",
    );
    expect(rows).toEqual([
      { key: "expired-plans", live: 1 },
      { key: "extract-todos", live: 1 },
      { key: "weekly-report", live: 1 },
    ]);
  });

  it("updates changed ones, ends undeclared ones, and never touches runtime schedules", async () => {
    await t.punctual.reconcileSchedules(declared);
    await t.punctual.schedule("user-made", plans, {}, { every: "1h" });
    const changed = [declared[0]!, { ...declared[1]!, payload: { batch: 100 } }];
    expect(await t.punctual.reconcileSchedules(changed)).toEqual({ inserted: 0, updated: 1, unchanged: 1, removed: 1 });
    const { rows } = await t.db.pool.query("select key, state, payload, declared from punctual.jobs order by key");
    expect(rows).toEqual([
      { key: "expired-plans", state: "pending", payload: {}, declared: true },
      { key: "extract-todos", state: "pending", payload: { batch: 100 }, declared: true },
      { key: "user-made", state: "pending", payload: {}, declared: false },
      { key: "weekly-report", state: "cancelled", payload: {}, declared: true },
    ]);
  });

  it("a worker given schedules reconciles them at start", async () => {
    const worker = startWorker({ tasks: [plans, todos], schedules: declared });
    await next(worker, "worker:poll");
    expect((await t.db.pool.query("select count(*)::int as n from punctual.jobs where declared")).rows[0].n).toBe(3);
  });
});

describe("per-user schedules", () => {
  it("5,000 schedules in several time zones, created in one call, each at its next local 08:00", async () => {
    const zones = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "America/Los_Angeles", "UTC"];
    const sendTodoEmail = defineTask({ name: "send-todo-email", payload: z.object({ userId: z.number() }), run: () => {} });
    const specs = Array.from({ length: 5000 }, (_, userId) => ({
      key: `todo-email:${userId}`,
      task: sendTodoEmail,
      payload: { userId },
      rule: { cron: "0 8 * * *", tz: zones[userId % zones.length]! },
    }));
    const before = new Date();
    const results = await t.punctual.scheduleMany(specs);
    expect(results.filter((r) => r.outcome === "inserted")).toHaveLength(5000);
    // Checked with PostgreSQL's own time-zone rules, independently of ours.
    const { rows } = await t.db.pool.query(
      `select count(*)::int as total,
              count(*) filter (where to_char(slot_at at time zone tz, 'HH24:MI:SS') = '08:00:00')::int as at_eight,
              count(*) filter (where slot_at > $1 and slot_at <= $1::timestamptz + interval '25 hours')::int as next_one,
              count(*) filter (where slot_at = run_at and state = 'pending')::int as pending
       from punctual.jobs where task = 'send-todo-email'`,
      [before],
    );
    expect(rows[0]).toEqual({ total: 5000, at_eight: 5000, next_one: 5000, pending: 5000 });
  });
});
