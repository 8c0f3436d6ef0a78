/**
 * `npm run bench`: the same workloads against Punctual and its peers (graphile-worker,
 * pg-boss, BullMQ on PostgreSQL and on Redis), on one PostgreSQL server, in one run,
 * alternating the order of systems so machine noise hits all of them. Prints a table
 * with Punctual's ratio to the best peer and writes it to BENCHMARKS.md.
 *
 *   npm run bench                      full run (about 90 minutes: 50 of them the 10-minute steady states,
 *                                      about 20 the process workload's 300,000-job backlogs)
 *   npm run bench -- --quick           a few minutes
 *   npm run bench -- --systems=punctual,graphile-worker --workloads=process,lateness
 *   npm run bench -- --systems=punctual --workloads=transactional
 *   npm run bench -- --out=FILE        write the report elsewhere (default BENCHMARKS.md)
 *
 * PostgreSQL: DATABASE_URL, else an embedded server. Redis: REDIS_URL, else
 * redis://127.0.0.1:6379 (BullMQ on Redis is skipped when it does not answer).
 */
import { writeFileSync } from "node:fs";
import { cpus, totalmem, tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { Redis } from "ioredis";
import { startDevDatabase } from "../dev/database.js";
import { Fleet } from "./lib/fleet.js";
import { latencySummary, postgresCpu, sleep } from "./lib/measure.js";
import { loadSystem, SYSTEM_IDS } from "./lib/systems.js";
import type { BenchContext, BenchPayload, SystemHandle, SystemModule } from "./systems/types.js";

const argv = process.argv.slice(2);
const flag = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const quick = argv.includes("--quick");
const WORKLOADS = ["enqueue", "process", "transactional", "lateness", "periodic", "scale", "steady"] as const;
type Workload = (typeof WORKLOADS)[number];
const chosenWorkloads = (flag("workloads")?.split(",") ?? WORKLOADS) as Workload[];
const chosenSystems = flag("systems")?.split(",") ?? [...SYSTEM_IDS];
const outFile = flag("out") ?? "BENCHMARKS.md";

/** Sizes and time bounds; --quick shrinks all of them. */
const P = quick
  ? { jobs: 5_000, backlog: 5_000, runs: 1, processCapMs: 20_000, lateJobs: 300, lateSpreadMs: 3_000, periodicSchedules: 200, periodicMs: 15_000,
      scaleFuture: 100_000, scaleFinished: 10_000, scaleJobs: 5_000, pickupJobs: 200, steadyMs: 30_000, steadyRate: 500, sampleMs: 5_000 }
  : { jobs: 20_000, backlog: 300_000, runs: 2, processCapMs: 60_000, lateJobs: 1_000, lateSpreadMs: 10_000, periodicSchedules: 200, periodicMs: 60_000,
      scaleFuture: 1_000_000, scaleFinished: 100_000, scaleJobs: 20_000, pickupJobs: 1_000, steadyMs: 600_000, steadyRate: 500, sampleMs: 30_000 };

for (const w of chosenWorkloads) if (!WORKLOADS.includes(w)) throw new Error(`unknown workload "${w}"; known: ${WORKLOADS.join(", ")}`);

// ---------------------------------------------------------------------------------
// Set-up: one PostgreSQL server, one fresh database per system.

const server = await startDevDatabase({ dataDir: path.join(tmpdir(), `punctual-bench-${process.pid}`), persistent: false });
const admin = new pg.Pool({ connectionString: server.url, max: 2 });
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

interface Entry {
  system: SystemModule;
  ctx: BenchContext;
  dbName: string;
  handle: SystemHandle;
}
const entries: Entry[] = [];
const skipped: string[] = [];
for (const id of chosenSystems) {
  const system = await loadSystem(id);
  if (system.store === "redis" && !(await redisAnswers())) {
    skipped.push(`${system.label}: no Redis at ${redisUrl}`);
    continue;
  }
  const dbName = `punctual_bench_${id.replace(/-/g, "_")}`;
  await admin.query(`drop database if exists "${dbName}" with (force)`);
  await admin.query(`create database "${dbName}"`);
  const url = new URL(server.url);
  url.pathname = `/${dbName}`;
  const ctx = { dbUrl: url.toString(), redisUrl };
  log(`opening ${system.label}`);
  entries.push({ system, ctx, dbName, handle: await system.open(ctx) });
}

async function redisAnswers() {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    return (await redis.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------
// Results: rows of (workload, metric) by system, each with which direction is better.

type Better = "higher" | "lower" | "none";
interface Row {
  section: string;
  metric: string;
  better: Better;
  values: Map<string, number[]>;
  notes: Map<string, string>;
  unit: string;
}
const rows: Row[] = [];
function record(section: string, metric: string, unit: string, better: Better, system: SystemModule, value: number | null, note?: string) {
  let row = rows.find((r) => r.section === section && r.metric === metric);
  if (!row) rows.push((row = { section, metric, better, unit, values: new Map(), notes: new Map() }));
  if (value !== null && Number.isFinite(value)) row.values.set(system.id, [...(row.values.get(system.id) ?? []), value]);
  if (note) row.notes.set(system.id, note);
}

/** Each run goes through the systems in another order, so noise does not favour one. */
function rotated<T>(items: readonly T[], run: number): T[] {
  const k = run % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function log(message: string) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

const transactions = async (e: Entry) => {
  if (e.system.store !== "postgres") return null;
  const { rows: r } = await admin.query("select xact_commit + xact_rollback as n from pg_stat_database where datname = $1", [e.dbName]);
  return Number(r[0].n);
};

async function vacuum(e: Entry, tables?: readonly string[]) {
  if (e.system.store !== "postgres") return;
  const c = new pg.Client({ connectionString: e.ctx.dbUrl });
  await c.connect();
  await c.query(`vacuum analyze${tables?.length ? ` ${tables.join(", ")}` : ""}`);
  await c.end();
}

/** `VACUUM ANALYZE` of the system's job tables (of the whole database when it names none). */
const vacuumJobTables = (e: Entry) => vacuum(e, e.system.jobTables);

/**
 * Autovacuum off for the system's job tables (and their partitions), or back to the
 * server's setting: a fresh backlog is one autovacuum has not come by yet, and with
 * a backlog that takes seconds to enqueue, whether it had was otherwise up to chance.
 */
async function jobTablesAutovacuum(e: Entry, on: boolean) {
  if (e.system.store !== "postgres") return;
  const c = new pg.Client({ connectionString: e.ctx.dbUrl });
  await c.connect();
  try {
    for (const table of e.system.jobTables ?? []) {
      const { rows } = await c.query<{ name: string }>(
        "select relid::regclass::text as name from pg_partition_tree($1::regclass) as t join pg_class as c on c.oid = t.relid where c.relkind = 'r'",
        [table],
      );
      for (const { name } of rows) {
        await c.query(on ? `alter table ${name} reset (autovacuum_enabled)` : `alter table ${name} set (autovacuum_enabled = off)`);
      }
    }
  } finally {
    await c.end();
  }
}

const due = (n: number, t?: number): BenchPayload => (t === undefined ? { n } : { n, t });

// ---------------------------------------------------------------------------------
// 1. Enqueue: one job per call from 8 callers, and the batch API (1,000 per call).

async function enqueue(e: Entry) {
  await e.handle.reset();
  let next = 0;
  let t = performance.now();
  const deadline = t + P.processCapMs;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < P.jobs && performance.now() < deadline) await e.handle.enqueueOne(due(next++));
    }),
  );
  record("Enqueue", "one job per call, 8 callers", "jobs/s", "higher", e.system, next / ((performance.now() - t) / 1000));
  await e.handle.reset();
  t = performance.now();
  for (let i = 0; i < P.jobs; i += 1000) {
    await e.handle.enqueueBatch(Array.from({ length: 1000 }, (_, k) => ({ payload: due(i + k) })));
  }
  record("Enqueue", "batch API, 1,000 per call", "jobs/s", "higher", e.system, P.jobs / ((performance.now() - t) / 1000));
}

// ---------------------------------------------------------------------------------
// 2. Process pre-inserted jobs: P.backlog batch-enqueued (1,000 per call), then
//    `VACUUM ANALYZE` of the system's job tables, unless `fresh` (a backlog processed
//    straight after its enqueue, before autovacuum comes by: autovacuum is held off the
//    job tables from the enqueue to the end of the case). reset() truncates, so each
//    case starts from an empty table. Jobs/s between the first and the last handler
//    start; PostgreSQL transactions, PostgreSQL CPU and the worker processes' CPU per
//    job from the workers' start to the last start (or the time cap).

interface ProcessResult {
  rate: number;
  n: number;
  finished: boolean;
  txPerJob: number | null;
  pgCpuSeconds: number | null;
  nodeCpuSeconds: number;
}

async function measureProcess(e: Entry, processes: number, mode: "defaults" | "best", fresh: boolean): Promise<ProcessResult> {
  await e.handle.reset();
  if (fresh) await jobTablesAutovacuum(e, false);
  for (let i = 0; i < P.backlog; i += 1000) {
    await e.handle.enqueueBatch(Array.from({ length: Math.min(1000, P.backlog - i) }, (_, k) => ({ payload: due(i + k) })));
  }
  if (!fresh) await vacuumJobTables(e);
  // The wait lets the enqueue's transactions reach pg_stat_database before tx0 (both
  // cases wait alike); the worker processes boot meanwhile.
  const [fleet] = await Promise.all([Fleet.load(e.system.id, e.ctx, processes, 10, mode), sleep(1_100)]);
  const tx0 = await transactions(e);
  const cpu = e.system.store === "postgres" ? postgresCpu(e.dbName) : () => null;
  await fleet.go();
  const finished = await fleet.until(() => fleet.starts.length >= P.backlog, P.processCapMs);
  const pgCpuSeconds = cpu();
  const nodeCpuSeconds = await fleet.cpuSeconds();
  await fleet.stop();
  if (fresh) await jobTablesAutovacuum(e, true);
  await sleep(1_100);
  const tx1 = await transactions(e);
  const times = fleet.starts.map((s) => s[3]).sort((a, b) => a - b);
  const n = times.length;
  const rate = n > 1 ? (n - 1) / ((times[n - 1]! - times[0]!) / 1000) : 0;
  return { rate, n, finished, txPerJob: tx0 !== null && tx1 !== null && n > 0 ? (tx1 - tx0) / n : null, pgCpuSeconds, nodeCpuSeconds };
}

function recordProcess(e: Entry, label: string, r: ProcessResult | string) {
  // Every line is recorded for every system, values or not, so that the lines keep this
  // order whichever system comes first (rows are created as first recorded).
  const measured = typeof r === "string" ? null : r;
  const perThousand = (seconds: number | null | undefined) => (measured?.n && seconds != null ? (seconds * 1e6) / measured.n : null);
  const note = typeof r === "string" ? r : r.finished ? undefined : `${r.n.toLocaleString("en-US")} of ${P.backlog.toLocaleString("en-US")} in ${P.processCapMs / 1000} s`;
  record("Process", `${label}: jobs/s`, "jobs/s", "higher", e.system, measured?.rate ?? null, note);
  record("Process", `${label}: transactions per job`, "tx", "lower", e.system, measured?.txPerJob ?? null);
  record("Process", `${label}: PostgreSQL CPU per 1,000 jobs`, "ms", "lower", e.system, perThousand(measured?.pgCpuSeconds));
  record("Process", `${label}: Node CPU per 1,000 jobs`, "ms", "lower", e.system, perThousand(measured?.nodeCpuSeconds));
}

async function processJobs(e: Entry, processes: number, mode: "defaults" | "best", label: string) {
  recordProcess(e, label, await measureProcess(e, processes, mode, false));
}

/**
 * The same backlog processed straight after its enqueue ("fresh") and after a
 * `VACUUM ANALYZE` of the job tables, back to back, in alternating order from run to
 * run. Redis systems have no VACUUM: only the second case is measured for them.
 */
async function processFreshAndVacuumed(e: Entry, run: number, processes: number, mode: "defaults" | "best", label: string) {
  const vacuumedLabel = `${label}, after VACUUM ANALYZE`;
  const freshLabel = `${label}, fresh backlog`;
  if (e.system.store !== "postgres") {
    recordProcess(e, vacuumedLabel, await measureProcess(e, processes, mode, false));
    recordProcess(e, freshLabel, "n/a: no VACUUM");
    return;
  }
  const results = new Map<boolean, ProcessResult>();
  for (const fresh of run % 2 === 0 ? [true, false] : [false, true]) results.set(fresh, await measureProcess(e, processes, mode, fresh));
  recordProcess(e, vacuumedLabel, results.get(false)!);
  recordProcess(e, freshLabel, results.get(true)!);
}

// ---------------------------------------------------------------------------------
// 3. Lateness: jobs due at random instants over a few seconds, one worker running.

async function lateness(e: Entry) {
  await e.handle.reset();
  const fleet = await Fleet.start(e.system.id, e.ctx, 1, 10, "best");
  const start = Date.now() + 1_000;
  const jobs = Array.from({ length: P.lateJobs }, (_, n) => {
    const t = Math.round(start + Math.random() * P.lateSpreadMs);
    return { payload: due(n, t), runAt: new Date(t) };
  });
  await e.handle.enqueueBatch(jobs);
  const finished = await fleet.until(() => fleet.starts.length >= P.lateJobs, P.lateSpreadMs + 30_000);
  await fleet.stop();
  const late = latencySummary(fleet.starts.map(([, t, , at]) => at - t!));
  const note = finished ? undefined : `${late.n} of ${P.lateJobs} ran`;
  for (const [k, v] of [["p50", late.p50], ["p95", late.p95], ["p99", late.p99], ["max", late.max]] as const) {
    record("Lateness", `future jobs, start - run_at, ${k}`, "ms", "lower", e.system, v, note);
  }
}

// ---------------------------------------------------------------------------------
// 4. Periodic: schedules firing every second on second boundaries, two workers. A fire
//    belongs to the second it started in; inside the measured window every schedule
//    should fire exactly once per second.

async function periodic(e: Entry) {
  const expected = P.periodicSchedules * (P.periodicMs / 1000);
  const firesMetric = `fires in ${P.periodicMs / 1000} s (expected ${expected.toLocaleString("en-US")})`;
  if (!e.handle.schedulePerSecond) {
    record("Periodic", firesMetric, "", "none", e.system, null, e.system.periodicNote ?? "not supported");
    return;
  }
  await e.handle.reset();
  const fleet = await Fleet.start(e.system.id, e.ctx, 2, 10, "best");
  await e.handle.schedulePerSecond(P.periodicSchedules);
  const from = Math.ceil(Date.now() / 1000) * 1000 + 2_000; // first whole second after set-up settles
  await sleep(from - Date.now() + P.periodicMs + 1_000);
  await fleet.stop();
  const to = from + P.periodicMs;
  const fires = new Map<string, number>();
  const late: number[] = [];
  for (const [, , s, at] of fleet.starts) {
    const slot = Math.floor(at / 1000) * 1000;
    if (s === null || slot < from || slot >= to) continue;
    fires.set(`${s}:${slot}`, (fires.get(`${s}:${slot}`) ?? 0) + 1);
    late.push(at - slot);
  }
  const duplicates = [...fires.values()].reduce((sum, c) => sum + c - 1, 0);
  const missed = expected - fires.size;
  const l = latencySummary(late);
  record("Periodic", firesMetric, "", "none", e.system, late.length);
  record("Periodic", "missed slots", "", "lower", e.system, missed);
  record("Periodic", "duplicate fires", "", "lower", e.system, duplicates);
  record("Periodic", "lateness p50", "ms", "lower", e.system, l.p50);
  record("Periodic", "lateness p99", "ms", "lower", e.system, l.p99);
  record("Periodic", "lateness max", "ms", "lower", e.system, l.max);
  await e.handle.reset();
}

// ---------------------------------------------------------------------------------
// 5. Scale: due-job throughput and pick-up latency with a table full of future and
//    finished rows, against the same on an empty table.

async function scaleRun(e: Entry) {
  // Throughput: pre-inserted due jobs, one worker process.
  for (let i = 0; i < P.scaleJobs; i += 1000) {
    await e.handle.enqueueBatch(Array.from({ length: 1000 }, (_, k) => ({ payload: due(i + k) })));
  }
  let fleet = await Fleet.start(e.system.id, e.ctx, 1, 10, "best");
  await fleet.until(() => fleet.starts.length >= P.scaleJobs, P.processCapMs);
  await fleet.stop();
  const times = fleet.starts.map((s) => s[3]).sort((a, b) => a - b);
  const rate = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000);
  // Pick-up: jobs enqueued one at a time at 100/s while a worker idles; start - enqueue.
  fleet = await Fleet.start(e.system.id, e.ctx, 1, 10, "best");
  for (let n = 0; n < P.pickupJobs; n++) {
    await e.handle.enqueueOne(due(n, Date.now()));
    await sleep(10);
  }
  await fleet.until(() => fleet.starts.length >= P.pickupJobs, 30_000);
  await fleet.stop();
  return { rate, pickup: latencySummary(fleet.starts.map(([, t, , at]) => at - t!)) };
}

async function scale(e: Entry) {
  if (!e.handle.seedScale) {
    record("Scale", "due jobs/s, empty table", "jobs/s", "higher", e.system, null, "no seeding");
    return;
  }
  await e.handle.reset();
  await vacuum(e);
  const empty = await scaleRun(e);
  await e.handle.reset();
  const t = performance.now();
  await e.handle.seedScale(P.scaleFuture, P.scaleFinished);
  log(`  seeded ${P.scaleFuture} future + ${P.scaleFinished} finished in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  await vacuum(e);
  const full = await scaleRun(e);
  const rows = `${(P.scaleFuture / 1e6).toLocaleString("en-US")}M future + ${(P.scaleFinished / 1000).toLocaleString("en-US")}k finished rows`;
  record("Scale", "due jobs/s, empty table", "jobs/s", "higher", e.system, empty.rate);
  record("Scale", `due jobs/s, ${rows}`, "jobs/s", "higher", e.system, full.rate);
  record("Scale", "throughput kept (full / empty)", "x", "higher", e.system, full.rate / empty.rate);
  record("Scale", "pick-up p99, empty table", "ms", "lower", e.system, empty.pickup.p99);
  record("Scale", `pick-up p99, ${rows}`, "ms", "lower", e.system, full.pickup.p99);
  record("Scale", "pick-up p99 ratio (full / empty)", "x", "lower", e.system, full.pickup.p99 / empty.pickup.p99);
  await e.handle.reset();
}

// ---------------------------------------------------------------------------------
// 6. Steady state: a fixed offered load for a long while, two workers; throughput,
//    end-to-end latency and storage sampled at intervals.

async function steady(e: Entry) {
  await e.handle.reset();
  await vacuum(e);
  const fleet = await Fleet.start(e.system.id, e.ctx, 2, 10, "best", 60_000);
  const samples: { rate: number; p99: number; bytes: number; dead: number | null }[] = [];
  const start = Date.now();
  let n = 0;
  let seen = 0;
  let sampleAt = start + P.sampleMs;
  const perTick = P.steadyRate / 10; // a batch every 100 ms
  for (let tick = 1; Date.now() < start + P.steadyMs; tick++) {
    const now = Date.now();
    await e.handle.enqueueBatch(Array.from({ length: perTick }, () => ({ payload: due(n++, now) })));
    if (Date.now() >= sampleAt) {
      const window = fleet.starts.slice(seen);
      seen = fleet.starts.length;
      samples.push({
        rate: window.length / (P.sampleMs / 1000),
        p99: latencySummary(window.map(([, t, , at]) => at - t!)).p99,
        bytes: await e.handle.storageBytes(),
        dead: await e.handle.deadTuples(),
      });
      const s = samples.at(-1)!;
      log(`steady state sample ${samples.length}: ${s.rate.toFixed(0)} jobs/s, p99 ${s.p99.toFixed(0)} ms, ${(s.bytes / 1024 / 1024).toFixed(1)} MB, ${s.dead ?? "?"} dead tuples`);
      sampleAt += P.sampleMs;
    }
    await sleep(Math.max(0, start + tick * 100 - Date.now()));
  }
  await fleet.stop();
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const mb = (b: number) => b / 1024 / 1024;
  const load = `${P.steadyRate}/s for ${P.steadyMs / 60_000} min`;
  record("Steady state", `${load}: jobs/s, first / last sample`, "", "none", e.system, null, `${first.rate.toFixed(0)} / ${last.rate.toFixed(0)}`);
  record("Steady state", "latency p99 (start - enqueue), first / last / worst sample", "ms", "none", e.system, null,
    `${first.p99.toFixed(0)} / ${last.p99.toFixed(0)} / ${Math.max(...samples.map((s) => s.p99)).toFixed(0)} ms`);
  record("Steady state", "storage, first / last / largest sample", "MB", "none", e.system, null,
    `${mb(first.bytes).toFixed(1)} / ${mb(last.bytes).toFixed(1)} / ${mb(Math.max(...samples.map((s) => s.bytes))).toFixed(1)} MB`);
  // Levelling off: the last sample against the one at 2 minutes (or the middle one, in a --quick run).
  const early = samples[Math.min(Math.round(120_000 / P.sampleMs) - 1, Math.floor(samples.length / 2))]!;
  record("Steady state", `storage, last sample / sample at ${((samples.indexOf(early) + 1) * P.sampleMs) / 1000} s`, "", "none", e.system, null,
    `${(last.bytes / early.bytes).toFixed(2)}x (${mb(last.bytes).toFixed(1)} / ${mb(early.bytes).toFixed(1)} MB)`);
  if (last.dead !== null) {
    record("Steady state", "dead tuples, last / largest sample", "", "none", e.system, null,
      `${last.dead.toLocaleString("en-US")} / ${Math.max(...samples.map((s) => s.dead ?? 0)).toLocaleString("en-US")}`);
  }
  record("Steady state", "jobs started / offered", "", "none", e.system, null, `${fleet.starts.length.toLocaleString("en-US")} / ${n.toLocaleString("en-US")}`);
  await e.handle.reset();
}

// ---------------------------------------------------------------------------------
// 2b. Handlers that write: P.jobs jobs whose handler inserts a row, autocommit, or in a
//     transaction that also records the job's success (Punctual's ctx.complete), one
//     process x 10. Systems without the feature get a note.

async function effects(e: Entry) {
  for (const effect of ["write", "transactional"] as const) {
    const label = effect === "write" ? "handler writes a row (autocommit)" : "the same write and the job's success in one transaction";
    if (!e.system.effects?.includes(effect)) {
      record("Handlers that write", `${label}: jobs/s`, "jobs/s", "higher", e.system, null, "n/a");
      continue;
    }
    await e.handle.reset();
    for (let i = 0; i < P.jobs; i += 1000) {
      await e.handle.enqueueBatch(Array.from({ length: Math.min(1000, P.jobs - i) }, (_, k) => ({ payload: due(i + k) })));
    }
    await vacuumJobTables(e);
    const fleet = await Fleet.load(e.system.id, e.ctx, 1, 10, "best", undefined, effect);
    await fleet.go();
    const finished = await fleet.until(() => fleet.starts.length >= P.jobs, P.processCapMs);
    await fleet.stop();
    const times = fleet.starts.map((s) => s[3]).sort((a, b) => a - b);
    const n = times.length;
    // Every job's row was written exactly once (the fleet stopped gracefully).
    const c = new pg.Client({ connectionString: e.ctx.dbUrl });
    await c.connect();
    const { rows: written } = await c.query("select count(*)::int as rows, count(distinct job_id)::int as jobs from bench_effects");
    await c.end();
    const ok = written[0].rows === n && written[0].jobs === n;
    const note = !finished ? `${n} of ${P.jobs} in ${P.processCapMs / 1000} s` : ok ? undefined : `${written[0].rows} rows for ${n} jobs`;
    record("Handlers that write", `${label}: jobs/s`, "jobs/s", "higher", e.system, n > 1 ? (n - 1) / ((times[n - 1]! - times[0]!) / 1000) : null, note);
  }
}

// ---------------------------------------------------------------------------------
// Run everything, alternating systems.

const began = Date.now();
const tasks: [Workload, string, (e: Entry, run: number) => Promise<void>][] = [
  ["enqueue", "enqueue", enqueue],
  ["process", "process, 1 process x 10, defaults", (e) => processJobs(e, 1, "defaults", "1 process x 10, defaults")],
  ["process", "process, 1 process x 10, best options, fresh backlog and after VACUUM ANALYZE",
    (e, run) => processFreshAndVacuumed(e, run, 1, "best", "1 process x 10, best options")],
  ["process", "process, 2 processes x 10, best options", (e) => processJobs(e, 2, "best", "2 processes x 10, best options")],
  ["transactional", "handlers that write", effects],
  ["lateness", "lateness", lateness],
  ["periodic", "periodic", periodic],
  ["scale", "scale", scale],
  ["steady", "steady state", steady],
];
const repeated = new Set<Workload>(["enqueue", "process", "lateness"]);
let turn = 0;
for (const [workload, name, run] of tasks) {
  if (!chosenWorkloads.includes(workload)) continue;
  const runs = repeated.has(workload) ? P.runs : 1;
  for (let r = 0; r < runs; r++) {
    for (const e of rotated(entries, turn++)) {
      log(`${name} (run ${r + 1}/${runs}): ${e.system.label}`);
      try {
        await run(e, r);
      } catch (error) {
        log(`  failed: ${(error as Error).stack}`);
        record(sectionOf(workload), `${name}: error`, "", "none", e.system, null, `error: ${(error as Error).message.slice(0, 80)}`);
      }
    }
  }
}

function sectionOf(w: Workload) {
  return {
    enqueue: "Enqueue",
    process: "Process",
    transactional: "Handlers that write",
    lateness: "Lateness",
    periodic: "Periodic",
    scale: "Scale",
    steady: "Steady state",
  }[w];
}

for (const e of entries) await e.handle.close();
const { rows: pgVersion } = await admin.query("show server_version");
// Steady-state storage depends on it: with autovacuum off, dead tuples only grow.
const { rows: autovacuum } = await admin.query("show autovacuum");
for (const e of entries) await admin.query(`drop database if exists "${e.dbName}" with (force)`);
await admin.end();
await server.stop();

// ---------------------------------------------------------------------------------
// Report.

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
function fmt(v: number, unit: string) {
  if (unit === "tx") return v.toFixed(2);
  if (unit === "x") return `${v.toFixed(2)}x`;
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(v === Math.round(v) ? 0 : 1);
}

const shown = entries.map((e) => e.system);
// Punctual is compared with the best PostgreSQL peer (the targets), and with BullMQ on
// Redis, a different kind of store, in a column of its own.
const pgPeers = shown.filter((s) => s.id !== "punctual" && s.store === "postgres");
const redisPeers = shown.filter((s) => s.store === "redis");
const lines: string[] = [];
lines.push(`| workload | ${shown.map((s) => s.label).join(" | ")} | Punctual vs best PostgreSQL peer |${redisPeers.length ? " Punctual vs BullMQ (Redis) |" : ""}`);
lines.push(`|---|${shown.map(() => "---:").join("|")}|---:|${redisPeers.length ? "---:|" : ""}`);
let section = "";
for (const row of rows) {
  if (row.section !== section) {
    section = row.section;
    lines.push(`| **${section}** |${shown.map(() => "").join("|")}| |${redisPeers.length ? " |" : ""}`);
  }
  const cell = (s: SystemModule) => {
    const vs = row.values.get(s.id);
    const note = row.notes.get(s.id);
    if (!vs?.length) return note ?? "—";
    const value = fmt(median(vs), row.unit) + (row.unit && !["tx", "x"].includes(row.unit) ? ` ${row.unit}` : "");
    return note ? `${value} (${note})` : value;
  };
  const ratio = (peers: SystemModule[]) => {
    const mine = row.values.get("punctual");
    const theirs = peers.map((p) => row.values.get(p.id)).filter((v): v is number[] => !!v?.length).map(median);
    if (row.better === "none" || !mine?.length || theirs.length === 0) return "";
    const best = row.better === "higher" ? Math.max(...theirs) : Math.min(...theirs);
    const m = median(mine);
    if (m === best) return "=";
    // Always "how many times better Punctual is": above 1 wins, below 1 loses.
    const r = row.better === "higher" ? m / best : best / m;
    return Number.isFinite(r) ? `${r.toFixed(2)}x` : "∞";
  };
  lines.push(`| ${row.metric} | ${shown.map(cell).join(" | ")} | ${ratio(pgPeers)} |${redisPeers.length ? ` ${ratio(redisPeers)} |` : ""}`);
}

const redisVersion = await (async () => {
  if (!shown.some((s) => s.store === "redis")) return null;
  const redis = new Redis(redisUrl);
  const info = await redis.info("server");
  redis.disconnect();
  return /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
})();
const command = `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`;
const minutes = ((Date.now() - began) / 60_000).toFixed(1);
const report = `# Benchmarks

Written by \`${command}\` on ${new Date().toISOString().slice(0, 10)} (${quick ? "quick mode" : "full run"}, ${minutes} min).
Rerun it to get your own; compare ratios within one run, not numbers across machines.

- Machine: ${cpus().length} x ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}
- PostgreSQL ${pgVersion[0].server_version} (${server.source}), default durability, autovacuum ${autovacuum[0].autovacuum}${redisVersion ? `; Redis ${redisVersion}` : ""}
- Systems: ${shown.map((s) => s.label).join(", ")}${skipped.length ? `; skipped: ${skipped.join("; ")}` : ""}
- Jobs are no-ops. Each system has a database of its own on the same server; workers are separate processes;
  systems take turns in a rotating order. ${P.runs > 1 ? `Enqueue, process and lateness are the median of ${P.runs} runs.` : "One run per workload."}
- "Punctual vs ...": how many times better Punctual is on that line (above 1: Punctual wins; "=": a tie), against the
  best of the PostgreSQL peers, and against BullMQ on Redis (another kind of store). Steady-state lines are read, not ranked.
- What "defaults" and "best options" mean for each system is written at the top of its file in \`bench/systems/\`.
- Process: ${P.backlog.toLocaleString("en-US")} jobs batch-enqueued, then \`VACUUM ANALYZE\` of the system's job table, then the
  workers start together (capped at ${P.processCapMs / 1000} s); "fresh backlog" skips the VACUUM ANALYZE, as when a backlog is processed
  straight after its enqueue (autovacuum held off the job tables from the enqueue to the end of the case, so that it cannot
  come by while the backlog is enqueued or processed). CPU counts from the workers' start to the last job start: PostgreSQL's from \`/proc\` (the
  system's backends and the server's own processes), Node's as the worker processes measure it (\`process.cpuUsage()\`,
  including the bench's own report of each start). Punctual's best options are its defaults plus \`retention: 0\` (a
  one-off job's row is deleted as its success is recorded, as graphile-worker deletes a finished job; by default it is
  kept a day); every workload but "1 process x 10, defaults" runs them.

${lines.join("\n")}
`;
console.log(`\n${report}`);
writeFileSync(outFile, report);
log(`wrote ${outFile}`);
