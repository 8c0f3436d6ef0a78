/**
 * The README's promises about connections: a worker given a connection string holds at
 * most 6 (a pool of 4, 1 for lease renewals, 1 for LISTEN), whatever it is doing; a
 * pool given without safeguards is warned about; an unreachable database is reported
 * once. (Keepalive on the sockets and the watchdog under real network faults:
 * network-faults.test.ts.)
 */
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { z } from "zod";
import { createClient, createWorker, defineTask } from "../../src/index.js";
import { captureLogs } from "../support/logs.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { collect } from "../support/events.js";

let db: TestDatabase;
let admin: pg.Client;

beforeAll(async () => {
  // Its pool stays unused (pg connects lazily): only the worker and a short-lived client connect.
  db = await createTestDatabase();
  // Counts from another database, so the counting connection is not counted.
  admin = new pg.Client({ connectionString: inject("adminUrl") });
  await admin.connect();
});
afterAll(async () => {
  await admin.end();
  await db.drop();
});

/** The worker's connections to the test database (not `except`), and how many wait on a lock. */
async function connections(except: number): Promise<{ total: number; waiting: number }> {
  const { rows } = await admin.query(
    `select count(*)::int as total, (count(*) filter (where wait_event_type = 'Lock'))::int as waiting
     from pg_stat_activity where datname = $1 and pid <> $2`,
    [db.name, except],
  );
  return rows[0];
}

it("a worker with a connection string holds at most 6 connections: a pool of 4, 1 for lease renewals and 1 for LISTEN, even when every statement waits", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const busy = defineTask({ name: "busy", payload: z.object({ n: z.number() }), maxAttempts: 1, run: async ({ n }) => {
    await gate;
    if (n % 2 === 0) throw new Error("half fail, so failures are written too");
  } });
  const worker = createWorker({
    connectionString: db.url,
    tasks: [busy],
    logger: pino({ level: "silent" }),
    heartbeatIntervalMs: 10,
    rescueIntervalMs: 10,
    pruneIntervalMs: 10,
    retention: 0,
    pollIntervalMs: 10,
    concurrency: 11, // a free slot: the claim loop keeps claiming
  });
  const listening = new Promise((resolve) => worker.once("worker:listening", resolve));
  await worker.start();
  await listening;
  const client = createClient({ connectionString: db.url });
  const full = collect(worker, "job:claimed", 10);
  await client.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ task: busy, payload: { n } })));
  await client.close();
  await full;

  // Every statement on the table now waits, holding its connection. First the claim,
  // the heartbeat, rescue and pruning; then, once the handlers return, the success and
  // failure writes too: 6 statements want a connection at once.
  const locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
  const { rows } = await locker.query("select pg_backend_pid() as pid");
  const lockerPid = rows[0].pid as number;
  await locker.query("begin");
  await locker.query("lock table punctual.jobs in access exclusive mode");
  let seen = await connections(lockerPid);
  for (let i = 0; i < 1000 && seen.waiting < 4; i++) seen = await connections(lockerPid);
  expect(seen.waiting).toBe(4);
  const done = Promise.all([collect(worker, "job:succeeded", 5), collect(worker, "job:failed", 5)]);
  release();
  for (let i = 0; i < 1000 && seen.waiting < 5; i++) seen = await connections(lockerPid);
  expect(seen.waiting).toBe(5); // the pool is saturated
  const samples = [seen.total];
  for (let i = 0; i < 50; i++) samples.push((await connections(lockerPid)).total);
  await locker.query("commit");
  await locker.end();
  await done;
  await worker.stop();
  expect(Math.max(...samples)).toBe(6);
});


const noop = defineTask({ name: "noop", payload: z.object({}), run: () => {} });

it("a worker given a pool without keepalive or timeouts warns at start and names what is missing; one with them does not", async () => {
  const bare = new pg.Pool({ connectionString: db.url });
  const safe = new pg.Pool({
    connectionString: db.url,
    keepAlive: true,
    connectionTimeoutMillis: 5000,
    query_timeout: 30_000,
  });
  const warnings = [];
  for (const pool of [bare, safe]) {
    const { lines, logger } = captureLogs();
    const worker = createWorker({ pool, tasks: [noop], logger });
    await worker.start();
    await worker.stop();
    warnings.push(lines.filter((l) => /lacks/.test(String(l.msg))));
  }
  await Promise.all([bare.end(), safe.end()]);
  expect(warnings[0]).toHaveLength(1);
  expect(warnings[0]![0]).toMatchObject({ level: 40, missing: ["keepAlive", "connectionTimeoutMillis", "query_timeout"] });
  expect(warnings[1]).toEqual([]);
});

it("a worker whose database refuses connections says so once, is not ready, and keeps trying", async () => {
  // A port nothing listens on: every connection is refused at once.
  const url = new URL(db.url);
  url.port = "1";
  const { lines, logger } = captureLogs();
  const worker = createWorker({ connectionString: url.toString(), tasks: [noop], logger, pollIntervalMs: 10, listen: false });
  const down = new Promise((resolve) => worker.once("worker:database", resolve));
  const errors = collect(worker, "worker:error", 10);
  await worker.start();
  expect(await down).toEqual({ reachable: false });
  await errors;
  expect(worker.ready).toBe(false);
  const unreachable = lines.filter((l) => String(l.msg).startsWith("database unreachable"));
  expect(unreachable).toHaveLength(1);
  expect(unreachable[0]).toMatchObject({ level: 40, err: { code: "ECONNREFUSED" } });
  // The ten failed claims after the first were logged at debug, not as errors.
  expect(lines.filter((l) => l.level === 50)).toEqual([]);
  await worker.stop({ timeoutMs: 100 });
});
