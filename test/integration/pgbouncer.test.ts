/**
 * Punctual behind a real PgBouncer in transaction mode (test/support/pgbouncer.ts: the
 * machine's, started privately, as packaged: no prepared statements across
 * transactions). Everything here goes through it, except the reads that check the
 * table and the set-up of jobs where the path does not matter.
 */
import { Writable } from "node:stream";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from "vitest";
import { z } from "zod";
import { createClient, createWorker, defineTask, type Worker } from "../../src/index.js";
import { isPreparedStatementLost, PreparedStatements, toQueryable, UNPREPARED_WARNING } from "../../src/executor.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { collect } from "../support/events.js";
import { openServerConnections, startPgBouncer, type PgBouncer } from "../support/pgbouncer.js";
import { spawnTs } from "../support/spawn.js";
import { hello } from "../fixtures/cli-tasks.js";

let db: TestDatabase;
let bouncer: PgBouncer;
/** The test database, through PgBouncer. */
let pooledUrl: string;

beforeAll(async () => {
  db = await createTestDatabase();
  bouncer = await startPgBouncer(inject("adminUrl"));
  pooledUrl = bouncer.url(db.name);
  // More server connections than any client here uses at once (see openServerConnections).
  await openServerConnections(pooledUrl, 16);
});
afterAll(async () => {
  // PgBouncer first: dropping the database would cut its server connections.
  await bouncer?.stop();
  await db?.drop();
});

/** A pool through PgBouncer, ended after the test. */
function pooledPool(max = 8): pg.Pool {
  const pool = new pg.Pool({ connectionString: pooledUrl, max });
  pool.on("error", () => {});
  onTestFinished(() => pool.end());
  return pool;
}

/** A logger whose lines (warn and above) the test reads. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "warn" }, sink), lines };
}

/** How many fallback warnings to expect from one worker or client that ran many statements. */
function expectFallbackWarnings(count: number) {
  if (bouncer.keepsPreparedStatements === false) expect(count).toBe(1);
  else if (bouncer.keepsPreparedStatements === true) expect(count).toBe(0);
  else expect(count).toBeLessThanOrEqual(1);
}

const runs = new Map<number, number>();
const counted = defineTask({
  name: "counted",
  payload: z.object({ n: z.number() }),
  run: (_payload, { job }) => void runs.set(job.id, (runs.get(job.id) ?? 0) + 1),
});

/** Starts a worker through PgBouncer, poll-only; stopped after the test. */
function startWorker(options: Partial<Parameters<typeof createWorker>[0]> = {}): Worker {
  const worker = createWorker({
    connectionString: pooledUrl,
    tasks: [counted],
    listen: false,
    logger: pino({ level: "silent" }),
    ...options,
  });
  onTestFinished(() => worker.stop({ timeoutMs: 1000 }));
  return worker;
}

/** Resolves once `total` jobs succeeded across `workers`. */
function succeeded(workers: Worker[], total: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => {
    for (const worker of workers) worker.on("job:succeeded", () => ++seen === total && resolve());
  });
}

/** Every job in the table succeeded in its first attempt, and each handler ran once. */
async function expectEachRanOnce(expected: number) {
  const { rows } = await db.pool.query<{ state: string; attempts: number; n: number }>(
    "select state, attempts, count(*)::int as n from punctual.jobs group by 1, 2",
  );
  expect(rows).toEqual([{ state: "succeeded", attempts: 1, n: expected }]);
  expect(runs.size).toBe(expected);
  expect([...runs.values()].every((n) => n === 1)).toBe(true);
}

async function emptyTable() {
  await db.pool.query("truncate punctual.jobs");
  runs.clear();
}

describe("enqueue through PgBouncer", () => {
  it("batches and transactional enqueues (commit and rollback) land exactly as asked", async () => {
    await emptyTable();
    const pool = pooledPool();
    const punctual = createClient({ executor: pool, prepare: false });
    for (let batch = 0; batch < 4; batch++) {
      const jobs = Array.from({ length: 500 }, (_, i) => ({ task: counted, payload: { n: batch * 500 + i } }));
      expect(await punctual.enqueueMany(jobs)).toHaveLength(500);
    }
    // 200 transactions, 8 at a time; every tenth rolls back and must leave nothing.
    const transaction = async (i: number) => {
      const client = await pool.connect();
      try {
        await client.query("begin");
        await punctual.enqueue(counted, { n: 10_000 + i }, { executor: client, key: `tx:${i}` });
        await punctual.enqueueMany([{ task: counted, payload: { n: 20_000 + i } }], { executor: client });
        await client.query(i % 10 === 0 ? "rollback" : "commit");
      } finally {
        client.release();
      }
    };
    for (let i = 0; i < 200; i += 8) await Promise.all(Array.from({ length: 8 }, (_, k) => transaction(i + k)));
    const { rows } = await db.pool.query<{ batch: number; tx: number; keyed: number }>(
      `select count(*) filter (where (payload->>'n')::int < 10000)::int as batch,
              count(*) filter (where (payload->>'n')::int >= 10000)::int as tx,
              count(key)::int as keyed
       from punctual.jobs`,
    );
    expect(rows[0]).toEqual({ batch: 2000, tx: 2 * 180, keyed: 180 });
  });

  it("a client left with prepare on falls back to unprepared statements: every enqueue lands, one warning", async () => {
    await emptyTable();
    const warnings: Error[] = [];
    const onWarning = (warning: Error & { code?: string }) => warning.code === "PUNCTUAL_UNPREPARED" && warnings.push(warning);
    process.on("warning", onWarning);
    onTestFinished(() => void process.off("warning", onWarning));
    const punctual = createClient({ executor: pooledPool() });
    for (let i = 0; i < 400; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) => punctual.enqueue(counted, { n: i + k })));
    }
    const { rows } = await db.pool.query("select count(*)::int as n from punctual.jobs");
    expect(rows[0].n).toBe(400);
    // process.emitWarning delivers on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expectFallbackWarnings(warnings.length);
    if (warnings[0]) expect(warnings[0].message).toBe(UNPREPARED_WARNING);
  });
});

describe("a worker through PgBouncer", () => {
  it("poll-only with prepare off: two workers run 3,000 jobs, each exactly once", { timeout: 120_000 }, async () => {
    await emptyTable();
    await createClient({ executor: db.pool }).enqueueMany(
      Array.from({ length: 3000 }, (_, n) => ({ task: counted, payload: { n } })),
    );
    const { logger, lines } = capturedLogger();
    const errors: Error[] = [];
    const workers = [0, 1].map(() => startWorker({ prepare: false, pollIntervalMs: 100, concurrency: 20, logger }));
    for (const worker of workers) worker.on("worker:error", (error) => errors.push(error));
    const done = succeeded(workers, 3000);
    await Promise.all(workers.map((w) => w.start()));
    await done;
    await Promise.all(workers.map((w) => w.stop()));
    await expectEachRanOnce(3000);
    expect(errors.filter(isPreparedStatementLost)).toEqual([]);
    expect(lines.filter((line) => line.msg === UNPREPARED_WARNING)).toEqual([]);
  });

  it("left with prepare on (the default), it falls back at the first failed statement: all jobs done, one warning", { timeout: 120_000 }, async () => {
    await emptyTable();
    await createClient({ executor: db.pool }).enqueueMany(
      Array.from({ length: 2000 }, (_, n) => ({ task: counted, payload: { n } })),
    );
    const { logger, lines } = capturedLogger();
    const errors: Error[] = [];
    const worker = startWorker({ pollIntervalMs: 100, concurrency: 20, logger });
    worker.on("worker:error", (error) => errors.push(error));
    const done = succeeded([worker], 2000);
    await worker.start();
    await done;
    await worker.stop();
    await expectEachRanOnce(2000);
    // The failed statements were sent again, unprepared: none surfaced as an error.
    expect(errors.filter(isPreparedStatementLost)).toEqual([]);
    const warnings = lines.filter((line) => line.msg === UNPREPARED_WARNING);
    expectFallbackWarnings(warnings.length);
    for (const warning of warnings) {
      expect(warning.level).toBe(40); // warn
      expect(["26000", "42P05"]).toContain((warning.err as { code?: string }).code);
    }
  });

  it("an every-second schedule, poll-only with the default 2 s poll, runs every slot on time", { timeout: 60_000 }, async () => {
    await emptyTable();
    const ticks: { slot: Date | null; late: boolean }[] = [];
    const tick = defineTask({
      name: "tick",
      payload: z.object({}),
      run: (_payload, { job }) => void ticks.push({ slot: job.slot, late: job.late }),
    });
    await createClient({ executor: db.pool }).schedule("every-second", tick, {}, { cron: "* * * * * *" });
    const worker = startWorker({ tasks: [tick], prepare: false });
    const skipped: unknown[] = [];
    worker.on("job:skipped", (job) => skipped.push(job));
    const fiveRuns = collect(worker, "job:succeeded", 5);
    await worker.start();
    await fiveRuns;
    await worker.stop();
    const { rows } = await db.pool.query<{ slot_at: Date; state: string }>(
      "select slot_at, state from punctual.jobs where key = 'every-second' order by id",
    );
    // Consecutive seconds, none missing: without a timer for the next occurrence it
    // would wait for the next poll, 2 s away, and the slot between would be skipped.
    const slots = rows.map((row) => row.slot_at.getTime());
    expect(slots.length).toBeGreaterThanOrEqual(6);
    expect(slots.slice(1).map((slot, i) => slot - slots[i]!)).toEqual(Array(slots.length - 1).fill(1000));
    expect(rows.at(-1)!.state).toBe("pending");
    expect(skipped).toEqual([]);
    expect(ticks.map((t) => t.slot!.getTime())).toEqual(slots.slice(0, ticks.length));
    expect(ticks.filter((t) => t.late)).toEqual([]);
  });
});

describe("the prepared-statement fallback, forced on a direct connection", () => {
  // The two ways a pooler shows it: a name the server connection already has (42P05),
  // and one pg thinks it prepared that the server connection does not have (26000).
  // Forced here by PREPARE and DEALLOCATE behind pg's back, so each runs every time.
  const statement = "select $1::int as v";

  async function directClient() {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    onTestFinished(() => client.end());
    return client;
  }

  it("42P05 (already exists): turns off, warns once, and the statement runs unprepared", async () => {
    const client = await directClient();
    await client.query("prepare punctual_probe as select 1");
    const warned: Error[] = [];
    const prepared = new PreparedStatements(true, (error) => warned.push(error));
    const q = toQueryable(client, { prepared });
    expect(await q.query(statement, [7], "probe")).toEqual([{ v: 7 }]);
    expect(await q.query(statement, [8], "probe")).toEqual([{ v: 8 }]);
    expect(prepared.enabled).toBe(false);
    expect(warned.map((e) => (e as Error & { code?: string }).code)).toEqual(["42P05"]);
  });

  it("26000 (does not exist): the name pg remembers is not sent again", async () => {
    const client = await directClient();
    const warned: Error[] = [];
    const prepared = new PreparedStatements(true, (error) => warned.push(error));
    const q = toQueryable(client, { prepared });
    expect(await q.query(statement, [1], "probe")).toEqual([{ v: 1 }]);
    await client.query("deallocate punctual_probe"); // pg still believes it is prepared
    expect(await q.query(statement, [2], "probe")).toEqual([{ v: 2 }]);
    expect(await q.query(statement, [3], "probe")).toEqual([{ v: 3 }]);
    expect(warned.map((e) => (e as Error & { code?: string }).code)).toEqual(["26000"]);
  });

  it("inside the caller's transaction, the error is thrown (the transaction is aborted); its retry goes through unprepared", async () => {
    const client = await directClient();
    await client.query("prepare punctual_probe as select 1");
    const prepared = new PreparedStatements(true);
    const q = toQueryable(client, { prepared });
    await client.query("begin");
    await expect(q.query(statement, [1], "probe")).rejects.toMatchObject({ code: "42P05" });
    await client.query("rollback");
    expect(prepared.enabled).toBe(false);
    await client.query("begin");
    expect(await q.query(statement, [2], "probe")).toEqual([{ v: 2 }]);
    await client.query("commit");
  });
});

describe("punctual worker through PgBouncer", () => {
  /** Names for hello jobs, and a promise per name that its handler ran in `worker`. */
  function greetings(worker: ReturnType<typeof spawnTs>, count: number, prefix: string) {
    const names = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
    const greeted = Promise.all(names.map((name) => worker.logLine((line) => line.msg === "greeted" && line.greeting === `hello ${name}`)));
    return { names, greeted };
  }

  async function expectHelloRanOnce(database: string, count: number) {
    const check = new pg.Client({ connectionString: database });
    await check.connect();
    try {
      const { rows } = await check.query("select state, attempts, count(*)::int as n from punctual.jobs where task = 'hello' group by 1, 2");
      expect(rows).toEqual([{ state: "succeeded", attempts: 1, n: count }]);
    } finally {
      await check.end();
    }
  }

  const warningsIn = (output: string) => output.split("\n").filter((line) => line.includes(JSON.stringify(UNPREPARED_WARNING))).length;

  it("--poll-only --no-prepare --migrate --migrate-url: migrates over the direct URL, runs jobs through PgBouncer, no fallback", { timeout: 90_000 }, async () => {
    const fresh = await createTestDatabase({ migrated: false });
    onTestFinished(() => fresh.drop());
    const worker = spawnTs(
      "src/cli/main.ts",
      ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--poll-only", "--no-prepare", "--poll-interval", "50",
        "--migrate", "--migrate-url", fresh.url],
      { DATABASE_URL: bouncer.url(fresh.name), DATABASE_DIRECT_URL: undefined },
    );
    onTestFinished(() => void worker.child.kill("SIGKILL")); // a no-op once it exited
    const started = await Promise.race([
      worker.logLine((line) => line.msg === "worker started"),
      worker.exit.then((code) => ({ exited: code, output: worker.output() })),
    ]);
    expect(started).toMatchObject({ tasks: ["hello"] });
    const { names, greeted } = greetings(worker, 300, "direct-");
    await createClient({ executor: fresh.pool }).enqueueMany(names.map((name) => ({ task: hello, payload: { name } })));
    await greeted;
    worker.child.kill("SIGTERM");
    expect(await worker.exit).toBe(0);
    await expectHelloRanOnce(fresh.url, 300);
    expect(warningsIn(worker.output())).toBe(0);
  });

  it("without --no-prepare: the same run falls back, saying so once", { timeout: 90_000 }, async () => {
    // A database of its own: server connections on which no earlier test prepared
    // Punctual's statements (a server connection that has one, same name and text,
    // would serve this worker's statements too, and the fallback would be left to chance).
    const fresh = await createTestDatabase();
    onTestFinished(() => fresh.drop());
    const freshPooledUrl = bouncer.url(fresh.name);
    await openServerConnections(freshPooledUrl, 16);
    const worker = spawnTs(
      "src/cli/main.ts",
      ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--poll-only", "--poll-interval", "50"],
      { DATABASE_URL: freshPooledUrl },
    );
    onTestFinished(() => void worker.child.kill("SIGKILL"));
    await worker.logLine((line) => line.msg === "worker started");
    const { names, greeted } = greetings(worker, 300, "fallback-");
    await createClient({ executor: fresh.pool }).enqueueMany(names.map((name) => ({ task: hello, payload: { name } })));
    await greeted;
    worker.child.kill("SIGTERM");
    expect(await worker.exit).toBe(0);
    await expectHelloRanOnce(fresh.url, 300);
    expectFallbackWarnings(warningsIn(worker.output()));
  });

  it("migrate takes DATABASE_DIRECT_URL over DATABASE_URL, and --migrate-url over both", async () => {
    // A direct URL nobody answers: the failure shows it was the one used.
    const unreachable = spawnTs("src/cli/main.ts", ["migrate"], {
      DATABASE_URL: pooledUrl,
      DATABASE_DIRECT_URL: "postgres://nobody@127.0.0.1:1/none",
    });
    expect(await unreachable.exit).toBe(1);
    expect(unreachable.output()).toContain("ECONNREFUSED");
    const direct = spawnTs("src/cli/main.ts", ["migrate", "--migrate-url", db.url], {
      DATABASE_URL: undefined,
      DATABASE_DIRECT_URL: "postgres://nobody@127.0.0.1:1/none",
    });
    expect(await direct.exit).toBe(0);
    expect(direct.output()).toContain("migrations applied");
  });
});
