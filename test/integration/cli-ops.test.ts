import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createClient, createWorker, upcomingSlots, type Worker } from "../../src/index.js";
import { cancelJobs, runNow } from "../../src/ops/actions.js";
import { listJobs, getJob, type JobOrder } from "../../src/ops/jobs.js";
import { listSchedules } from "../../src/ops/schedules.js";
import { jobStats } from "../../src/ops/stats.js";
import { createTestDatabase, snapshotJobs, type TestDatabase } from "../support/database.js";
import { next } from "../support/events.js";
import { hello } from "../fixtures/cli-tasks.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `punctual ...args` (the real CLI, through tsx) and collects stdout and stderr apart. */
function punctual(args: string[], env: Record<string, string | undefined>): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: "silent", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Stack frames, as Node prints them: none may reach the user. */
const STACK = /^\s+at /m;

let db: TestDatabase;
const cli = (...args: string[]) => punctual(args, { DATABASE_URL: db.url });
const json = async (...args: string[]) => {
  const run = await cli(...args, "--json");
  expect(run.stderr, run.stderr).toBe("");
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout);
};

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

async function insertJob(fields: Record<string, unknown>): Promise<number> {
  const names = Object.keys(fields);
  const { rows } = await db.pool.query(
    `insert into punctual.jobs (${names.join(", ")}) values (${names.map((_, i) => `$${i + 1}`).join(", ")}) returning id`,
    Object.values(fields),
  );
  return Number(rows[0].id);
}

const row = async (id: number) => (await db.pool.query("select * from punctual.jobs where id = $1", [id])).rows[0];

describe("bad command lines: one line naming the problem, exit 2, no stack, nothing written", () => {
  // A database that does not exist: the command line must be refused before any connection.
  const nowhere = "postgres://nobody@127.0.0.1:1/none";
  it.concurrent.for<[string, string[], RegExp]>([
    ["an unknown flag", ["jobs", "--bogus"], /^punctual: unknown option --bogus \(see punctual jobs --help\)$/],
    ["a flag of another command", ["show", "7", "--state", "failed"], /^punctual: unknown option --state \(see punctual show --help\)$/],
    ["a value given to a switch", ["jobs", "--json=yes"], /^punctual: --json takes no value/],
    ["a flag without its value", ["jobs", "--limit"], /^punctual: --limit needs a value/],
    ["a flag given twice", ["jobs", "--task", "a", "--task", "b"], /^punctual: --task is given twice/],
    ["an extra argument", ["jobs", "now"], /^punctual: unexpected argument "now"/],
    ["an unknown state", ["jobs", "--state", "failed,broken"], /^punctual: --state must be one or more of pending, running, succeeded, failed, cancelled; got "broken"/],
    ["a limit out of range", ["jobs", "--limit", "0"], /^punctual: --limit must be an integer from 1 to 1000; got "0"/],
    ["an unknown order", ["jobs", "--order", "oldest"], /^punctual: --order: must be newest or due \(see punctual jobs --help\)$/],
    ["due order with a finished state", ["jobs", "--order", "due", "--state", "failed"], /^punctual: --order: due lists pending jobs only/],
    ["a cursor it did not give", ["jobs", "--cursor", "bm9wZQ"], /^punctual: --cursor: is not a cursor this list gave/],
    ["show without a job", ["show"], /^punctual: show needs <id\|key> \(see punctual show --help\)$/],
    ["show with an id and --key", ["show", "7", "--key", "a"], /^punctual: show takes <id\|key> or --key, not both/],
    ["id 0", ["cancel", "0"], /^punctual: "0" is not a job id/],
    ["retry --failed with an id", ["retry", "7", "--failed"], /^punctual: retry takes <id\|key>, --key or --failed, not more than one/],
    ["a bulk filter on one job", ["retry", "7", "--since", "1h"], /^punctual: --since filters retry --failed; it does not apply to one job/],
    ["a bad duration", ["retry", "--failed", "--since", "an hour"], /^punctual: --since: must look like "500ms"/],
    ["enqueue without a payload", ["enqueue", "hello"], /^punctual: enqueue needs <task> <json>/],
    ["a payload that is not JSON", ["enqueue", "hello", "{name: 1}"], /^punctual: <json> must be JSON: /],
    ["a run-at without a zone", ["enqueue", "hello", "{}", "--run-at", "2030-01-01 08:00"], /^punctual: --run-at must be an ISO 8601 date-time with a zone/],
    ["both run-at and delay", ["enqueue", "hello", "{}", "--run-at", "2030-01-01T08:00:00Z", "--delay", "1m"], /^punctual: give --run-at or --delay, not both/],
    ["a count limit of 0", ["stats", "--count-limit", "0"], /^punctual: --count-limit must be an integer from 1 to 10000000; got "0"/],
    ["a history of -1", ["show", "7", "--history=-1"], /^punctual: --history must be an integer from 0 to 1000; got "-1"/],
  ])("refuses %s", async ([_what, args, message], { expect }) => {
    const run = await punctual(args, { DATABASE_URL: nowhere });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr.trim()).toMatch(message);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("without a database URL: says so, exit 2", async () => {
    const run = await punctual(["jobs"], { DATABASE_URL: "" });
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe("punctual: set DATABASE_URL or pass --database-url (see punctual jobs --help)");
  });

  it("an unreachable database: one line, exit 3", async () => {
    const run = await punctual(["stats"], { DATABASE_URL: nowhere });
    expect(run.code).toBe(3);
    expect(run.stderr.trim()).toMatch(/^punctual: .*ECONNREFUSED/);
    expect(run.stderr).not.toMatch(STACK);
  });

  it("input SQL refuses (punctual.enqueue's checks): its message, exit 2, nothing written", async () => {
    const before = await snapshotJobs(db.pool);
    for (const [args, message] of [
      [["--priority", "99"], 'punctual: punctual.enqueue: priority must be an integer from -10 to 10, got "99"'],
      [["--queue", "no spaces"], /^punctual: punctual\.enqueue: queue must be 1-64 letters/],
      [["--key", ""], /^punctual: punctual\.enqueue: key must be/],
      [["--on-conflict", "merge"], /^punctual: punctual\.enqueue: on_conflict must be/],
    ] as const) {
      const run = await cli("enqueue", "hello", "{}", ...args);
      expect(run.code, run.stderr).toBe(2);
      if (typeof message === "string") expect(run.stderr.trim()).toBe(message);
      else expect(run.stderr.trim()).toMatch(message);
      expect(run.stderr).not.toMatch(STACK);
    }
    const badTask = await cli("enqueue", "not a task", "{}");
    expect(badTask.code).toBe(2);
    expect(badTask.stderr.trim()).toMatch(/^punctual: punctual\.enqueue: task must be/);
    expect(await snapshotJobs(db.pool)).toEqual(before);
  });

  it("--help prints the operator usage, exit 0", async () => {
    const run = await punctual(["retry", "--help"], { DATABASE_URL: nowhere });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("punctual retry <id|key> | --key KEY | --failed");
    expect(run.stdout).toContain("Exit codes: 0 done, 1 nothing found or matched, 2 bad arguments, 3 database error.");
  });
});

describe("against a database", () => {
  beforeEach(async () => {
    await db.pool.query("truncate punctual.jobs");
  });

  it("enqueue: as punctual.enqueue, with the outcome; --json", async () => {
    const inserted = await json("enqueue", "hello", '{"name": "ops"}', "--key", "ops:1", "--delay", "10m", "--queue", "emails", "--priority", "-5", "--max-attempts", "3");
    expect(inserted).toMatchObject({ key: "ops:1", state: "pending", outcome: "inserted" });
    const stored = await row(inserted.id);
    expect(stored).toMatchObject({ task: "hello", payload: { name: "ops" }, queue: "emails", priority: -5, max_attempts: 3 });
    // Due 10 minutes after the database's now() of the statement that read --delay (the insert's own now() is a little later).
    expect(stored.run_at.getTime() - stored.created_at.getTime()).toBeGreaterThan(9 * 60_000);
    expect(stored.run_at.getTime() - stored.created_at.getTime()).toBeLessThanOrEqual(10 * 60_000);
    expect(new Date(inserted.runAt).getTime()).toBe(stored.run_at.getTime());

    const replaced = await json("enqueue", "hello", '{"name": "again"}', "--key", "ops:1", "--run-at", "2030-01-01T08:00:00+01:00");
    expect(replaced).toMatchObject({ id: inserted.id, outcome: "replaced", runAt: "2030-01-01T07:00:00.000Z" });
    const kept = await json("enqueue", "hello", '{"name": "third"}', "--key", "ops:1", "--on-conflict", "keep");
    expect(kept).toMatchObject({ id: inserted.id, outcome: "kept" });
    expect((await row(inserted.id)).payload).toEqual({ name: "again" });

    const human = await cli("enqueue", "hello", "{}");
    expect(human.code).toBe(0);
    expect(human.stdout.trim()).toMatch(/^inserted job \d+ \(hello\): pending, due \d{4}-\d\d-\d\dT[\d:]+Z$/);
  });

  it("jobs: filters, newest first or earliest due, a table or --json", async () => {
    const failed = await insertJob({ task: "hello", key: "user:1:mail", state: "failed", attempts: 5, finished_at: new Date(), last_error: "smtp down" });
    const due = await insertJob({ task: "hello", key: "user:2:mail", queue: "emails", run_at: new Date(Date.now() - 60_000) });
    const later = await insertJob({ task: "report", key: "user_1", run_at: new Date(Date.now() + 3_600_000), priority: 5 });
    const urgentLater = await insertJob({ task: "report", run_at: new Date(Date.now() + 7_200_000), priority: -10 });

    const all = await json("jobs");
    expect(all.nextCursor).toBeNull();
    expect(all.jobs.map((j: { id: number }) => j.id)).toEqual([urgentLater, later, due, failed]);
    expect(Object.keys(all.jobs[0]).sort()).toEqual(
      ["attempts", "createdAt", "finishedAt", "id", "key", "lastError", "lockedBy", "maxAttempts", "periodic", "priority", "queue", "runAt", "startedAt", "state", "task"].sort(),
    );
    const ids = async (...args: string[]) => (await json("jobs", ...args)).jobs.map((j: { id: number }) => j.id);
    expect(await ids("--state", "failed")).toEqual([failed]);
    expect(await ids("--state", "pending,failed", "--task", "hello")).toEqual([due, failed]);
    expect(await ids("--queue", "emails")).toEqual([due]);
    // A prefix, taken literally: "_" is not a wildcard.
    expect(await ids("--key", "user:")).toEqual([due, failed]);
    expect(await ids("--key", "user_")).toEqual([later]);
    // Earliest due first, whatever the priority.
    expect(await ids("--order", "due")).toEqual([due, later, urgentLater]);

    const table = await cli("jobs", "--state", "failed");
    expect(table.code).toBe(0);
    const [header, line] = table.stdout.trim().split("\n");
    expect(header).toMatch(/^ID\s+STATE\s+TASK\s+QUEUE\s+KEY\s+ATTEMPTS\s+RUN AT \(UTC\)\s+FINISHED \(UTC\)\s+LAST ERROR$/);
    expect(line).toMatch(new RegExp(`^${failed}\\s+failed\\s+hello\\s+default\\s+user:1:mail\\s+5/5\\s+.*smtp down$`));
    const none = await cli("jobs", "--task", "nothing-like-it");
    expect(none).toMatchObject({ code: 0, stdout: "no jobs match\n" });
  });

  it.each<[JobOrder, string[]]>([["newest", []], ["due", ["--state", "pending"]]])(
    "jobs --order %s: keyset pages, no duplicates and no gaps, also while rows are added",
    async (order, stateArgs) => {
      // Many jobs share one run_at to the microsecond: the cursor must break ties by id.
      await db.pool.query(
        `insert into punctual.jobs (task, run_at, priority)
         select 'hello', timestamptz '2026-01-01 00:00:00.123456+00' + (g % 7) * interval '1 microsecond', (g % 3) - 1
         from generate_series(1, 230) as g`,
      );
      const expected = (
        await db.pool.query(
          order === "newest" ? "select id from punctual.jobs order by id desc" : "select id from punctual.jobs order by run_at, id",
        )
      ).rows.map((r) => Number(r.id));
      // Through the CLI: the first two pages, the second from the first's cursor.
      const first = await json("jobs", "--order", order, ...stateArgs, "--limit", "40");
      const second = await json("jobs", "--order", order, ...stateArgs, "--limit", "40", "--cursor", first.nextCursor);
      expect([...first.jobs, ...second.jobs].map((j: { id: number }) => j.id)).toEqual(expected.slice(0, 80));
      const human = await cli("jobs", "--order", order, ...stateArgs, "--limit", "40");
      expect(human.stdout.trim().split("\n").at(-1)).toBe(`more: --cursor ${first.nextCursor}`);

      // Through the library, to the end, inserting rows between pages (newer, and due later).
      const seen: number[] = [];
      let cursor: string | null = second.nextCursor;
      seen.push(...expected.slice(0, 80));
      while (cursor) {
        const page = await listJobs(db.pool, { order, limit: 40, cursor });
        seen.push(...page.jobs.map((j) => j.id));
        cursor = page.nextCursor;
        // Behind the cursor in either order: a newer id, an earlier run_at.
        await db.pool.query("insert into punctual.jobs (task, run_at) values ('hello', '2025-01-01')");
      }
      expect(seen).toEqual(expected);
    },
  );

  it("show: one job in full by id; by key, the live job and the key's other jobs; --json", async () => {
    const old = await insertJob({ task: "hello", key: "invoice:9", state: "failed", attempts: 2, max_attempts: 2, finished_at: new Date(), last_error: "boom", last_error_stack: "Error: boom\n    at charge (billing.ts:10:5)", payload: { amount: 5 } });
    const live = await insertJob({ task: "hello", key: "invoice:9", payload: { amount: 7 } });

    const byKey = await json("show", "invoice:9");
    expect(byKey).toMatchObject({ id: live, state: "pending", payload: { amount: 7 }, rule: null, history: [{ id: old, state: "failed", lastError: "boom" }] });
    const byId = await json("show", String(old));
    expect(byId).toMatchObject({
      id: old,
      state: "failed",
      attempts: 2,
      maxAttempts: 2,
      lastError: "boom",
      lastErrorStack: "Error: boom\n    at charge (billing.ts:10:5)",
      history: [{ id: live, state: "pending" }],
    });

    const human = await cli("show", String(old));
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("state:        failed");
    expect(human.stdout).toContain("attempts:     2 of 2");
    expect(human.stdout).toContain('payload:\n  {\n    "amount": 5\n  }');
    expect(human.stdout).toContain("stack:\n  Error: boom\n      at charge (billing.ts:10:5)");
    expect(human.stdout).toMatch(new RegExp(`other jobs with this key, newest first:\\nID .*\\n${live}\\s+pending`));

    // A key made of digits, with --key.
    const digits = await insertJob({ task: "hello", key: "2024" });
    expect((await json("show", "--key", "2024")).id).toBe(digits);

    const missing = await cli("show", "nope");
    expect(missing).toMatchObject({ code: 1, stdout: "", stderr: 'punctual show: no job with key "nope"\n' });
    expect((await cli("show", "999999")).code).toBe(1);
  });

  it("schedules: rule, zone, missed policy, next run in UTC and in its zone, last outcome", async () => {
    const client = createClient({ executor: db.pool });
    // A finished earlier occurrence of the Paris schedule.
    await insertJob({ task: "hello", key: "digest:paris", state: "failed", finished_at: new Date(), last_error: "mailer down", cron: "0 8 * * *", tz: "Europe/Paris" });
    const paris = await client.schedule("digest:paris", hello, { name: "p" }, { cron: "0 8 * * *", tz: "Europe/Paris", missed: "skip" });
    const every = await client.schedule("cleanup", hello, { name: "c" }, { every: "10m" });
    await insertJob({ task: "hello", key: "one-off" }); // not a schedule

    const { schedules, nextCursor } = await json("schedules");
    expect(nextCursor).toBeNull();
    expect(schedules.map((s: { key: string }) => s.key)).toEqual(["cleanup", "digest:paris"]);
    const [c, p] = schedules;
    const parisLocal = DateTimeLocal(paris.runAt, "Europe/Paris");
    expect(p).toMatchObject({
      key: "digest:paris",
      task: "hello",
      rule: { kind: "cron", cron: "0 8 * * *", tz: "Europe/Paris", missed: "skip" },
      zone: "Europe/Paris",
      state: "pending",
      nextRunAt: paris.runAt.toISOString(),
      nextRunLocal: parisLocal,
      lastOutcome: { state: "failed", lastError: "mailer down" },
    });
    expect(p.nextRunLocal).toMatch(/T08:00:00\+0[12]:00$/);
    expect(c).toMatchObject({ rule: { kind: "every", everyMs: 600_000, fixedDelay: false, missed: "once" }, zone: "UTC", nextRunAt: every.runAt.toISOString(), lastOutcome: null });

    // One written by SQL, not placed yet: its next run is the rule's first slot.
    await db.pool.query("select punctual.schedule('from-sql', 'hello', '{}', cron => '30 6 * * *', tz => 'Asia/Tokyo')");
    const [fromSql] = (await listSchedules(db.pool, { keyPrefix: "from-sql" })).schedules;
    expect(fromSql!.slotAt).toBeNull();
    expect(fromSql!.nextRunLocal).toMatch(/T06:30:00\+09:00$/);

    const human = await cli("schedules", "--key", "digest:");
    expect(human.code).toBe(0);
    const [header, line] = human.stdout.trim().split("\n");
    expect(header).toMatch(/^KEY\s+TASK\s+RULE\s+ZONE\s+MISSED\s+STATE\s+NEXT RUN \(UTC\)\s+NEXT RUN \(LOCAL\)\s+LAST OUTCOME$/);
    expect(line).toMatch(/^digest:paris\s+hello\s+cron 0 8 \* \* \*\s+Europe\/Paris\s+skip\s+pending\s+\S+Z\s+\d{4}-\d\d-\d\d 08:00:00 \+0[12]:00\s+failed \S+ mailer down$/);

    // A periodic job enqueued by SQL without a key has nothing to page by: not listed.
    await db.pool.query(`select * from punctual.enqueue_many('[{"task": "hello", "every_ms": 60000}]')`);

    // Paged by key.
    const page1 = await listSchedules(db.pool, { limit: 2 });
    const page2 = await listSchedules(db.pool, { limit: 2, cursor: page1.nextCursor });
    expect([...page1.schedules, ...page2.schedules].map((s) => s.key)).toEqual(["cleanup", "digest:paris", "from-sql"]);
    expect(page2.nextCursor).toBeNull();
  });

  it("stats: counts by state and queue, the oldest due job's age per queue, failures in the last hour", async () => {
    await insertJob({ task: "hello", run_at: new Date(Date.now() - 90_000) });
    await insertJob({ task: "hello", run_at: new Date(Date.now() - 5_000) });
    await insertJob({ task: "hello", queue: "emails", run_at: new Date(Date.now() - 30_000) });
    await insertJob({ task: "hello", queue: "emails", run_at: new Date(Date.now() + 3_600_000) });
    await insertJob({ task: "hello", queue: "emails", state: "running", locked_by: "w1", locked_until: new Date(Date.now() + 60_000), attempts: 1 });
    await insertJob({ task: "hello", state: "failed", finished_at: new Date(Date.now() - 60_000) });
    await insertJob({ task: "hello", queue: "emails", state: "failed", finished_at: new Date(Date.now() - 2 * 3_600_000) });
    await insertJob({ task: "hello", state: "succeeded", finished_at: new Date() });
    await insertJob({ task: "hello", state: "cancelled", finished_at: new Date() });

    const stats = await json("stats");
    expect(stats.countLimit).toBe(10_000);
    expect(stats.states).toEqual({
      pending: { count: 4, capped: false },
      running: { count: 1, capped: false },
      succeeded: { count: 1, capped: false },
      failed: { count: 2, capped: false },
      cancelled: { count: 1, capped: false },
    });
    expect(stats.failedLastHour).toEqual({ count: 1, capped: false });
    expect(stats.queues).toHaveLength(2);
    const [def, emails] = stats.queues;
    expect(def).toMatchObject({ queue: "default", due: { count: 2 }, scheduled: { count: 0 }, running: { count: 0 }, failedLastHour: { count: 1 } });
    expect(def.oldestDueAgeMs).toBeGreaterThanOrEqual(90_000);
    expect(emails).toMatchObject({ queue: "emails", due: { count: 1 }, scheduled: { count: 1 }, running: { count: 1 }, failedLastHour: { count: 0 } });
    expect(emails.oldestDueAgeMs).toBeGreaterThanOrEqual(30_000);
    expect(emails.oldestDueAgeMs).toBeLessThan(def.oldestDueAgeMs);

    // Bounded counts: a limit below the count says "at least".
    const capped = await jobStats(db.pool, { countLimit: 1 });
    expect(capped.states.pending.capped).toBe(true);
    expect(capped.states.failed).toEqual({ count: 1, capped: true });

    const human = await cli("stats");
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("states: pending 4  running 1  succeeded 1  failed 2  cancelled 1");
    expect(human.stdout).toContain("failed in the last hour: 1");
    expect(human.stdout).toMatch(/^QUEUE\s+DUE\s+OLDEST DUE\s+SCHEDULED\s+RUNNING\s+FAILED 1H$/m);
    expect(human.stdout).toMatch(/^default\s+2\s+\d+m\d\ds\s+0\s+0\s+1$/m);
  });

  describe("with a worker", () => {
    let worker: Worker | undefined;
    const startWorker = () => {
      worker = createWorker({ connectionString: db.url, tasks: [hello], logger: pino({ level: "silent" }), pollIntervalMs: 50 });
      void worker.start();
      return worker;
    };
    afterAll(async () => {
      await worker?.stop({ timeoutMs: 500 });
    });

    it("retry: a failed job goes back to pending, due now, with one more attempt; a worker then runs it to success", async () => {
      const id = await insertJob({ task: "hello", payload: { name: "again" }, state: "failed", attempts: 5, max_attempts: 5, finished_at: new Date(), last_error: "boom", run_at: new Date(Date.now() - 3_600_000) });
      const run = await cli("retry", String(id));
      expect(run).toMatchObject({ code: 0, stderr: "" });
      expect(run.stdout.trim()).toBe(`job ${id} retried, due now: pending`);
      const retried = await row(id);
      expect(retried).toMatchObject({ state: "pending", attempts: 5, max_attempts: 6, finished_at: null, last_error: "boom" });
      expect(retried.run_at).toEqual(retried.updated_at); // now(), of the statement that retried it

      const succeeded = next(startWorker(), "job:succeeded", (job) => job.id === id);
      expect((await succeeded)[0]).toMatchObject({ id, attempt: 6 });
      expect(await row(id)).toMatchObject({ state: "succeeded", attempts: 6 });

      // Again: it is not failed any more.
      const again = await cli("retry", String(id));
      expect(again).toMatchObject({ code: 1, stdout: "", stderr: `punctual retry: job ${id} not retried: is succeeded, not failed\n` });
    });

    it("run-now of a schedule's occurrence: runs now, for its slot; the next occurrence is on the rule's next slot", async () => {
      const client = createClient({ executor: db.pool });
      const rule = { cron: "0 8 * * *", tz: "Europe/Paris" };
      const scheduled = await client.schedule("paris-digest", hello, { name: "digest" }, rule);
      const slot = scheduled.slotAt!;
      expect(slot.getTime()).toBeGreaterThan(Date.now());

      const w = worker ?? startWorker();
      const succeeded = next(w, "job:succeeded", (job) => job.id === scheduled.id);
      const run = await cli("run-now", "paris-digest");
      expect(run).toMatchObject({ code: 0, stdout: `job ${scheduled.id} (key paris-digest) due now: pending\n` });
      await succeeded;
      const ran = await row(scheduled.id);
      expect(ran).toMatchObject({ state: "succeeded" });
      expect(ran.slot_at).toEqual(slot); // it ran for its slot
      const { rows: [successor] } = await db.pool.query("select * from punctual.jobs where key = 'paris-digest' and state = 'pending'");
      // The schedule's later slots did not move: the next is the one after the original slot.
      const [expected] = upcomingSlots(rule, slot, 1);
      expect(successor.slot_at).toEqual(expected);
      expect(successor.run_at).toEqual(expected);
    });
  });

  it("retry --failed [--task] [--since]: the matching failed jobs, newest per key; a key with a live job is skipped", async () => {
    const hour = 3_600_000;
    const recent = await insertJob({ task: "hello", state: "failed", attempts: 2, max_attempts: 5, finished_at: new Date(Date.now() - 60_000) });
    const olderSameKey = await insertJob({ task: "hello", key: "k1", state: "failed", attempts: 5, finished_at: new Date(Date.now() - 120_000) });
    const newerSameKey = await insertJob({ task: "hello", key: "k1", state: "failed", attempts: 5, finished_at: new Date(Date.now() - 60_000) });
    const occurrence = await insertJob({ task: "hello", key: "every-min", state: "failed", attempts: 5, finished_at: new Date(), every_ms: 60_000 });
    const nextOccurrence = await insertJob({ task: "hello", key: "every-min", every_ms: 60_000, run_at: new Date(Date.now() + 60_000) });
    const otherTask = await insertJob({ task: "report", state: "failed", finished_at: new Date() });
    const tooOld = await insertJob({ task: "hello", state: "failed", finished_at: new Date(Date.now() - 2 * hour) });

    const run = await cli("retry", "--failed", "--task", "hello", "--since", "1h", "--json");
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.changed.map((j: { id: number }) => j.id).sort()).toEqual([recent, newerSameKey].sort());
    expect(result.skipped).toEqual(
      expect.arrayContaining([
        { id: olderSameKey, key: "k1", state: "failed", reason: "a newer failed job with its key is retried" },
        { id: occurrence, key: "every-min", state: "failed", reason: `its key has a live job (${nextOccurrence})` },
      ]),
    );
    expect(result.skipped).toHaveLength(2);
    expect((await row(recent)).max_attempts).toBe(5); // attempts left: unchanged
    expect((await row(newerSameKey)).max_attempts).toBe(6);
    expect((await row(otherTask)).state).toBe("failed");
    expect((await row(tooOld)).state).toBe("failed");

    const single = await cli("retry", "every-min");
    expect(single.code).toBe(1);
    expect(single.stderr).toContain(`is pending, not failed`);
    const occurrenceRun = await cli("retry", String(occurrence));
    expect(occurrenceRun.code).toBe(1);
    expect(occurrenceRun.stderr.trim()).toBe(
      `punctual retry: job ${occurrence} not retried: its key has a live job (${nextOccurrence}) (for a schedule, run-now its key runs the next occurrence now)`,
    );

    const nothing = await cli("retry", "--failed", "--task", "nothing");
    expect(nothing).toMatchObject({ code: 1, stdout: "", stderr: "punctual retry: no failed jobs match\n" });
  });

  it("cancel: a pending job ends cancelled; a running one is asked to stop; a finished one is left, exit 1", async () => {
    const pending = await insertJob({ task: "hello", key: "c:1" });
    const running = await insertJob({ task: "hello", state: "running", locked_by: "w1", locked_until: new Date(Date.now() + 60_000), attempts: 1 });

    const byKey = await cli("cancel", "c:1");
    expect(byKey).toMatchObject({ code: 0, stdout: `job ${pending} (key c:1) cancelled: cancelled\n` });
    expect(await row(pending)).toMatchObject({ state: "cancelled" });
    expect((await row(pending)).finished_at).not.toBeNull();

    const asked = await cli("cancel", String(running));
    expect(asked.code).toBe(0);
    expect(asked.stdout).toMatch(/^cancel requested for running job \d+: /);
    const held = await row(running);
    expect(held.state).toBe("running");
    expect(held.cancel_requested_at).not.toBeNull();

    const again = await cli("cancel", "c:1");
    expect(again).toMatchObject({ code: 1, stderr: `punctual cancel: job ${pending} not cancelled: is cancelled, not pending or running\n` });
    expect((await cli("cancel", "no-such-key")).code).toBe(1);
  });

  it("run-now: a future job becomes due now; a running one is left, exit 1", async () => {
    const future = await insertJob({ task: "hello", run_at: new Date(Date.now() + 86_400_000) });
    const result = await json("run-now", String(future));
    expect(result).toEqual({ changed: [{ id: future, key: null, state: "pending" }], skipped: [] });
    const moved = await row(future);
    expect(moved.run_at).toEqual(moved.updated_at); // now(), of the statement that moved it

    const running = await insertJob({ task: "hello", state: "running", locked_by: "w1", locked_until: new Date(Date.now() + 60_000) });
    const refused = await cli("run-now", String(running));
    expect(refused).toMatchObject({ code: 1, stderr: `punctual run-now: job ${running} not run now: is running, not pending\n` });
  });

  it("bulk actions by filter (the library, for the dashboard): cancel and run-now every match", async () => {
    const a = await insertJob({ task: "old", run_at: new Date(Date.now() + 3_600_000) });
    const b = await insertJob({ task: "old", run_at: new Date(Date.now() + 3_600_000) });
    const keep = await insertJob({ task: "new", run_at: new Date(Date.now() + 3_600_000) });
    const moved = await runNow(db.pool, { filter: { task: "old" } });
    expect(moved.changed.map((j) => j.id).sort()).toEqual([a, b].sort());
    const cancelled = await cancelJobs(db.pool, { filter: { task: "old", state: ["pending", "failed"] } });
    expect(cancelled.changed).toHaveLength(2);
    expect((await row(keep)).state).toBe("pending");
    expect((await getJob(db.pool, { id: a }))!.state).toBe("cancelled");
  });
});

/** An instant as `getJob`/`listSchedules` show it in a zone, computed here independently. */
function DateTimeLocal(instant: Date, zone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "longOffset" })
      .formatToParts(instant)
      .map((p) => [p.type, p.value]),
  );
  const offset = parts.timeZoneName === "GMT" ? "+00:00" : parts.timeZoneName!.replace("GMT", "");
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offset}`;
}

describe("query plans on a large table", () => {
  let big: TestDatabase;
  beforeAll(async () => {
    big = await createTestDatabase();
    // 200,000 rows: mostly finished, a million-user-style tail of future schedules,
    // a due backlog, a few failed, cancelled and running.
    await big.pool.query(`
      insert into punctual.jobs (task, queue, state, finished_at, run_at)
      select 'hello', case when g % 4 = 0 then 'emails' else 'default' end, 'succeeded', now() - g * interval '10 millisecond', now() - interval '1 day'
      from generate_series(1, 150000) g;
      insert into punctual.jobs (task, key, priority, run_at, cron, tz, slot_at)
      select 'digest', 'user:' || g, (g % 3) - 1, now() + interval '1 hour' + g * interval '1 second', '0 8 * * *', 'Europe/Paris',
             now() + interval '1 hour' + g * interval '1 second'
      from generate_series(1, 45000) g;
      insert into punctual.jobs (task, queue, run_at) select 'hello', 'emails', now() - g * interval '1 second' from generate_series(1, 3000) g;
      insert into punctual.jobs (task, state, finished_at, last_error) select 'hello', 'failed', now() - g * interval '1 minute', 'boom' from generate_series(1, 1500) g;
      insert into punctual.jobs (task, state, finished_at) select 'hello', 'cancelled', now() - g * interval '1 minute' from generate_series(1, 400) g;
      insert into punctual.jobs (task, state, locked_by, locked_until, attempts) select 'hello', 'running', 'w', now() + interval '1 minute', 1 from generate_series(1, 100) g;
    `);
    await big.pool.query("vacuum analyze punctual.jobs");
  });
  afterAll(() => big.drop());

  interface PlanNode {
    "Node Type": string;
    "Relation Name"?: string;
    "Index Name"?: string;
    Plans?: PlanNode[];
    "Shared Hit Blocks": number;
    "Shared Read Blocks": number;
  }

  /**
   * Runs `work` with an executor that runs every statement twice: once under EXPLAIN
   * (ANALYZE, BUFFERS) to keep its plan, then for real, so the ops function gets its rows.
   */
  async function plansOf(work: (executor: { query: (q: { text: string; values?: unknown[] }) => Promise<{ rows: unknown[] }> }) => Promise<unknown>) {
    const plans: { text: string; plan: PlanNode }[] = [];
    await work({
      async query({ text, values }) {
        const { rows } = await big.pool.query({ text: `explain (analyze, buffers, format json) ${text}`, values });
        plans.push({ text, plan: rows[0]["QUERY PLAN"][0].Plan });
        return big.pool.query({ text, values });
      },
    });
    return plans;
  }

  const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];

  it("lists, show, schedules and stats read indexes, not the table: a small share of its pages", async () => {
    const { rows: [{ pages, collate }] } = await big.pool.query(
      "select pg_relation_size('punctual.jobs') / 8192 as pages, datcollate as collate from pg_database where datname = current_database()",
    );
    // LIKE 'prefix%' reads a range of a btree index only under the C collation (as the
    // embedded server's); elsewhere the key prefix is a filter on the scan (documented).
    const cCollation = collate === "C" || collate === "POSIX";
    const cases: [string, (executor: never) => Promise<unknown>][] = [
      ["jobs newest", (e) => listJobs(e, { limit: 50 })],
      ["jobs newest, 2nd page", async (e) => listJobs(e, { limit: 50, cursor: (await listJobs(big.pool, { limit: 50 })).nextCursor })],
      ["jobs failed", (e) => listJobs(e, { state: "failed", limit: 50 })],
      ["jobs cancelled", (e) => listJobs(e, { state: "cancelled", limit: 50 })],
      ["jobs running", (e) => listJobs(e, { state: "running", limit: 50 })],
      ["jobs due", (e) => listJobs(e, { order: "due", limit: 50 })],
      ["jobs due, queue filter", (e) => listJobs(e, { order: "due", queue: "emails", limit: 50 })],
      ["jobs due, a queue with no jobs", (e) => listJobs(e, { order: "due", queue: "nothing-here", limit: 50 })],
      ["jobs by key prefix", (e) => listJobs(e, { keyPrefix: "user:4444", limit: 50 })],
      ["show by key", (e) => getJob(e, { key: "user:4444" })],
      ["schedules", (e) => listSchedules(e, { limit: 100 })],
      ["schedules by prefix", (e) => listSchedules(e, { keyPrefix: "user:1234", limit: 100 })],
      // Up to 1,000 rows per part (the default is 10,000: 5% of this table per part).
      ["stats", (e) => jobStats(e, { countLimit: 1000 })],
    ];
    const report: string[] = [];
    for (const [name, run] of cases) {
      const plans = await plansOf(run as never);
      for (const { text, plan } of plans) {
        const all = nodes(plan);
        const buffers = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"];
        const indexes = [...new Set(all.map((n) => n["Index Name"]).filter(Boolean))];
        report.push(`${name}: ${buffers} buffers, ${indexes.join(", ")}`);
        const seqScans = all.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "jobs");
        if (name.includes("prefix") && !cCollation) continue;
        expect(seqScans, `${name}: ${text}`).toEqual([]);
        if (name.startsWith("jobs due, ")) {
          // A filter that few pending rows match (a queue, a task) is applied to the
          // claim-index probes, which then read the pending rows of other queues, future
          // ones included (documented; logged below), never the finished rows.
          expect(indexes, `${name}: ${text}`).toEqual(["jobs_claim_idx"]);
        } else if (name === "schedules") {
          // Per schedule: its live-key entry and row, and one probe of the key index for its last outcome.
          expect(buffers, `${name}: ${text}`).toBeLessThan(5 * 100 + 20);
        } else if (name === "stats") {
          // Reads at most 1,000 rows per part and per priority probe (here about 5,000
          // rows, each a heap visit for its queue or state): bounded by the limit.
          expect(buffers, `${name}: ${text}`).toBeLessThan(pages / 4);
        } else {
          expect(buffers, `${name}: ${text}`).toBeLessThan(pages / 10);
        }
      }
    }
    console.log(`table: 200,000 rows, ${pages} pages, collation ${collate}\n${report.join("\n")}`);
  });
});
