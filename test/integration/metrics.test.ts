import { rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Server } from "node:http";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { z } from "zod";
import { createClient, createMetrics, createWorker, defineTask, listenMetrics, migrate, type Worker } from "../../src/index.js";
import { QUEUE_STATS_SQL, queryQueueStats } from "../../src/metrics/queue-stats.js";
import { readiness } from "../../src/metrics/readiness.js";
import type { WorkerHealth } from "../../src/worker/worker.js";
import { startEmbedded, type EmbeddedDatabase } from "../../dev/database.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { collect, next } from "../support/events.js";
import { captureLogs } from "../support/logs.js";
import { spawnTs } from "../support/spawn.js";
import { hello } from "../fixtures/cli-tasks.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const silent = pino({ level: "silent" });

/** Serves a worker's metrics on a free loopback port, closed when the test ends. */
async function serve(worker: Worker, options: Parameters<typeof createMetrics>[1] = {}) {
  const metrics = createMetrics(worker, options);
  const server: Server = await listenMetrics(metrics.handler, { port: 0 });
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  onTestFinished(() => metrics.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { metrics, base };
}

/** The samples of a Prometheus text page: `name{labels}` -> value. */
async function scrape(base: string): Promise<{ text: string; samples: Map<string, number> }> {
  const response = await fetch(`${base}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const cut = line.lastIndexOf(" ");
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return { text, samples };
}

async function readyz(base: string) {
  const response = await fetch(`${base}/readyz`);
  return { status: response.status, body: (await response.json()) as { status: string; reasons?: string[] } };
}

describe("metrics", () => {
  it("a scrape after running jobs shows counters and histograms moved by exactly the jobs run, labelled by task and queue only", async () => {
    const ok = defineTask({ name: "ok", payload: z.object({ n: z.number() }), run: () => {} });
    const flaky = defineTask({
      name: "flaky",
      payload: z.object({}),
      backoff: { baseMs: 1, maxMs: 1 },
      run: (_p, { job }) => {
        if (job.attempt === 1) throw new Error("first attempt fails");
      },
    });
    const bad = defineTask({
      name: "bad",
      payload: z.object({}),
      maxAttempts: 2,
      backoff: { baseMs: 1, maxMs: 1 },
      run: () => {
        throw new Error("always fails");
      },
    });
    const worker = createWorker({ pool: db.pool, tasks: [ok, flaky, bad], queues: ["default", "emails"], concurrency: 4, pollIntervalMs: 50, logger: silent });
    onTestFinished(() => worker.stop());
    const { base } = await serve(worker, { queueStats: { intervalMs: 0 } });

    // Before start: counters have no samples yet, the probes answer.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await readyz(base)).toEqual({ status: 503, body: { status: "not ready", reasons: ["worker not started"] } });
    const before = await scrape(base);
    expect(before.text).toContain("# TYPE punctual_jobs_claimed_total counter");
    expect([...before.samples.keys()].filter((k) => k.startsWith("punctual_jobs_"))).toEqual([]);

    const punctual = createClient({ executor: db.pool, tasks: [ok, flaky, bad] });
    // Jobs a worker does not run, for the queue gauges: due 10 minutes ago (a task no worker knows) and in the future.
    await db.pool.query(`select punctual.enqueue('nobody-runs-this', '{}', run_at => now() - interval '10 minutes')`);
    await db.pool.query(`select punctual.enqueue('nobody-runs-this', '{}', run_at => now() - interval '1 minute', queue => 'emails')`);
    await punctual.enqueueMany(Array.from({ length: 4 }, (_, n) => ({ task: ok, payload: { n }, delay: "1h" })));
    await punctual.enqueue(ok, { n: 99 }, { delay: "1h", queue: "emails" });

    const listening = next(worker, "worker:listening");
    const succeeded = collect(worker, "job:succeeded", 5 + 3 + 2);
    const failed = next(worker, "job:failed");
    await worker.start();
    await listening;
    await punctual.enqueueMany([
      ...Array.from({ length: 5 }, (_, n) => ({ task: ok, payload: { n }, key: `secret-key-${n}` })),
      ...Array.from({ length: 3 }, (_, n) => ({ task: ok, payload: { n }, queue: "emails" })),
      { task: flaky, payload: {} },
      { task: flaky, payload: {} },
      { task: bad, payload: {} },
    ]);
    await succeeded;
    await failed;

    const { text, samples } = await scrape(base);
    const at = (name: string, labels: string) => samples.get(`${name}{${labels}}`);
    const counts = {
      claimed: { 'task="ok",queue="default"': 5, 'task="ok",queue="emails"': 3, 'task="flaky",queue="default"': 4, 'task="bad",queue="default"': 2 },
      succeeded: { 'task="ok",queue="default"': 5, 'task="ok",queue="emails"': 3, 'task="flaky",queue="default"': 2 },
      retried: { 'task="flaky",queue="default"': 2, 'task="bad",queue="default"': 1 },
      failed: { 'task="bad",queue="default"': 1 },
    };
    for (const [what, expected] of Object.entries(counts)) {
      const found = Object.fromEntries(
        [...samples].filter(([k]) => k.startsWith(`punctual_jobs_${what}_total{`)).map(([k, v]) => [k.slice(k.indexOf("{") + 1, -1), v]),
      );
      expect(found, what).toEqual(expected);
    }
    expect(text).not.toMatch(/punctual_jobs_(lost|cancelled|rescued)_total\{/);
    // A run is timed once per outcome (success, retry, final failure); lateness once per start.
    for (const [labels, runs] of Object.entries(counts.claimed)) {
      expect(at("punctual_job_run_duration_seconds_count", labels), labels).toBe(runs);
      expect(at("punctual_job_lateness_seconds_count", labels), labels).toBe(runs);
      expect(at("punctual_job_run_duration_seconds_bucket", `le="+Inf",${labels}`), labels).toBe(runs);
      expect(at("punctual_job_run_duration_seconds_sum", labels)).toBeGreaterThanOrEqual(0);
    }
    // Bounded labels: task, queue (and le, state) only; never a key or an id.
    const labelNames = new Set([...text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
    expect([...labelNames].sort()).toEqual(["le", "queue", "task"]);
    expect(text).not.toContain("secret-key");

    expect(samples.get("punctual_worker_running_jobs")).toBe(0);
    expect(samples.get("punctual_worker_free_slots")).toBe(4);
    expect(samples.get("punctual_worker_ready")).toBe(1);
    // Per queue: the never-run jobs are due, the delayed ones scheduled.
    expect(at("punctual_queue_due_jobs", 'queue="default"')).toBe(1);
    expect(at("punctual_queue_due_jobs", 'queue="emails"')).toBe(1);
    expect(at("punctual_queue_scheduled_jobs", 'queue="default"')).toBe(4);
    expect(at("punctual_queue_scheduled_jobs", 'queue="emails"')).toBe(1);
    expect(at("punctual_queue_oldest_due_age_seconds", 'queue="default"')).toBeGreaterThanOrEqual(600);
    expect(at("punctual_queue_oldest_due_age_seconds", 'queue="emails"')).toBeGreaterThanOrEqual(60);
    expect(at("punctual_queue_oldest_due_age_seconds", 'queue="emails"')).toBeLessThan(600);
    expect(samples.get("punctual_queue_stats_errors_total")).toBe(0);

    expect(await readyz(base)).toEqual({ status: 200, body: { status: "ready" } });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);

    await worker.stop();
    expect(await readyz(base)).toEqual({ status: 503, body: { status: "not ready", reasons: ["worker stopping"] } });
  });

  it("a worker started against an unreachable database reports not ready, and says why", async () => {
    const task = defineTask({ name: "t", payload: z.object({}), run: () => {} });
    const logs = captureLogs();
    // Nothing listens on port 1: every connection is refused.
    const worker = createWorker({ connectionString: "postgres://nobody@127.0.0.1:1/none", tasks: [task], pollIntervalMs: 50, logger: logs.logger });
    onTestFinished(() => worker.stop());
    const { base } = await serve(worker, { queueStats: { intervalMs: 0 } });
    const down = next(worker, "worker:database", ({ reachable }) => !reachable);
    await worker.start();
    const starting = await readyz(base);
    expect(starting.status).toBe(503);
    expect(starting.body.reasons).toContain("no claim has completed yet");
    await down;
    const unreachable = await readyz(base);
    expect(unreachable.status).toBe(503);
    expect(unreachable.body.reasons).toEqual(expect.arrayContaining(["database unreachable", "no claim has completed yet"]));
    // The queue gauges cannot be read: no sample (not a stale 0), and the failure is counted.
    const { samples } = await scrape(base);
    expect([...samples.keys()].filter((k) => k.startsWith("punctual_queue_") && !k.startsWith("punctual_queue_stats"))).toEqual([]);
    expect(samples.get("punctual_queue_stats_errors_total")).toBeGreaterThanOrEqual(1);
    expect(samples.get("punctual_worker_ready")).toBe(0);
    // Its log says the database is unreachable, never that the worker started.
    expect(logs.lines.some((l) => String(l.msg).startsWith("database unreachable"))).toBe(true);
    expect(logs.lines.map((l) => l.msg)).not.toContain("worker started");
  });

  it("the readiness rules", () => {
    const healthy: WorkerHealth = {
      started: true,
      stopping: false,
      databaseReachable: true,
      listen: true,
      listening: true,
      queues: ["default"],
      lastClaimAt: 1_000_000,
      running: 0,
      buffered: 0,
      concurrency: 2,
      pollIntervalMs: 2000,
      dbClockOffsetMs: 0,
    };
    const now = 1_000_000 + 15_000; // the default bound: max(3 x 2 s, 15 s)
    expect(readiness(healthy, now)).toEqual({ ready: true, reasons: [] });
    expect(readiness({ ...healthy, listen: false, listening: false }, now).ready).toBe(true);
    expect(readiness({ ...healthy, listening: false }, now).reasons).toEqual(["LISTEN connection down"]);
    expect(readiness({ ...healthy, databaseReachable: false }, now).reasons).toEqual(["database unreachable"]);
    expect(readiness({ ...healthy, lastClaimAt: null }, now).reasons).toEqual(["no claim has completed yet"]);
    expect(readiness(healthy, now + 1).reasons).toEqual(["no claim has completed for 15 s (bound 15 s)"]);
    // Every slot taken: the worker waits for a slot, not for the database.
    expect(readiness({ ...healthy, running: 2 }, now + 60_000).ready).toBe(true);
    expect(readiness({ ...healthy, pollIntervalMs: 10_000 }, now + 14_000).ready).toBe(true);
    expect(readiness(healthy, now + 60_000, 120_000).ready).toBe(true);
    expect(readiness({ ...healthy, stopping: true }, now).reasons).toEqual(["worker stopping"]);
    expect(readiness({ ...healthy, started: false, lastClaimAt: null, listening: false }, now).reasons).toEqual(["worker not started"]);
  });

  it("the per-queue statement reads the claim index only, and its cost does not grow with the table", async () => {
    const queues = ["default", "emails"];
    onTestFinished(() => db.pool.query("truncate punctual.jobs").then(() => {}));
    // Counts stop at the cap.
    await db.pool.query(
      `insert into punctual.jobs (task, queue, run_at) select 'q', 'capped', now() - interval '1 minute' from generate_series(1, 8)`,
    );
    expect(await queryQueueStats(db.pool, ["capped"], 5)).toEqual([{ queue: "capped", due: 5, scheduled: 0, oldestDueAgeSeconds: expect.any(Number) }]);
    await db.pool.query(`delete from punctual.jobs where queue = 'capped'`);

    /**
     * EXPLAIN (ANALYZE, BUFFERS) of the statement: the buffers it touched, the indexes it
     * read, and the scans of punctual.jobs that read no index (a sequential scan).
     */
    async function explain() {
      const { rows } = await db.pool.query(`explain (analyze, buffers, format json) ${QUEUE_STATS_SQL}`, [queues, 10_000]);
      const plan = rows[0]["QUERY PLAN"][0].Plan;
      const indexes = new Set<string>();
      const unindexed: string[] = [];
      type Node = { "Node Type": string; "Relation Name"?: string; "Index Name"?: string; Plans?: Node[] };
      const walk = (node: Node) => {
        if (node["Index Name"]) indexes.add(node["Index Name"]);
        // A bitmap heap scan reads the rows its bitmap index scan (a child) found.
        if (node["Relation Name"] === "jobs" && !node["Index Name"] && node["Node Type"] !== "Bitmap Heap Scan") unindexed.push(node["Node Type"]);
        for (const child of node.Plans ?? []) walk(child);
      };
      walk(plan);
      return { buffers: plan["Shared Hit Blocks"] + plan["Shared Read Blocks"], indexes: [...indexes], unindexed };
    }
    // 15,000 due rows in each served queue (beyond the cap), then future rows (mostly
    // another queue's: per-user schedules) and finished rows awaiting pruning, which
    // must cost nothing.
    await db.pool.query(
      `insert into punctual.jobs (task, queue, priority, run_at)
       select 't', (array['default', 'emails'])[g % 2 + 1], (g % 3) - 1, now() - g * interval '1 millisecond'
       from generate_series(1, 30000) g`,
    );
    async function addRows(n: number) {
      await db.pool.query(
        `insert into punctual.jobs (task, queue, priority, run_at)
         select 't', case when g % 10 = 0 then 'default' else 'per-user' end, (g % 3) - 1, now() + interval '1 hour' + g * interval '1 second'
         from generate_series(1, $1::int) g`,
        [n],
      );
      await db.pool.query(
        `insert into punctual.jobs (task, state, finished_at) select 't', 'succeeded', now() - interval '1 hour' from generate_series(1, $1::int / 2)`,
        [n],
      );
      await db.pool.query("vacuum analyze punctual.jobs");
    }
    await addRows(100_000);
    const small = await explain();
    // The first 10,000 future rows (priority -1: g = 3, 6, ..., 30,000) hold 1,000 of default's (g % 10 = 0).
    expect(await queryQueueStats(db.pool, queues)).toEqual([
      { queue: "default", due: 10_000, scheduled: 1_000, oldestDueAgeSeconds: expect.any(Number) },
      { queue: "emails", due: 10_000, scheduled: 0, oldestDueAgeSeconds: expect.any(Number) },
    ]);
    await addRows(200_000);
    const medium = await explain();
    await addRows(300_000);
    const large = await explain();
    console.log(`queue statement buffers touched: ${small.buffers} (100,000 future rows), ${medium.buffers} (300,000), ${large.buffers} (600,000)`);
    for (const plan of [small, medium, large]) {
      expect(plan.indexes).toEqual(["jobs_claim_idx"]);
      expect(plan.unindexed).toEqual([]);
    }
    // Bounded by the caps (10,000 due rows per queue, 10,000 future rows), not by the
    // table: once rows of several insert batches interleave in index order, each counted
    // future row may sit on a heap page of its own (at most 10,000 more than the first
    // measure), and then it stays there.
    expect(medium.buffers).toBeLessThanOrEqual(small.buffers + 10_000 + 500);
    expect(large.buffers).toBeLessThanOrEqual(medium.buffers * 1.2 + 50);
  });
});

describe("metrics: a PostgreSQL restart under a running worker", () => {
  // This test owns its server (an embedded PostgreSQL, whatever DATABASE_URL says), so
  // it can stop and start it.
  const dataDir = path.join(tmpdir(), `punctual-metrics-${process.pid}`);
  let server: EmbeddedDatabase;
  beforeAll(async () => {
    server = await startEmbedded({ dataDir, persistent: true });
    await migrate(server.url);
  }, 120_000);
  afterAll(async () => {
    await server?.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  });

  it("/readyz fails while the database is stopped, and passes again once it is back", async () => {
    const task = defineTask({ name: "t", payload: z.object({}), run: () => {} });
    const worker = createWorker({
      connectionString: server.url,
      tasks: [task],
      pollIntervalMs: 100,
      leaseMs: 2000,
      logger: silent,
    });
    onTestFinished(() => worker.stop());
    const { base } = await serve(worker, { queueStats: false });
    const listening = next(worker, "worker:listening");
    const claimed = next(worker, "worker:poll");
    await worker.start();
    await Promise.all([listening, claimed]);
    expect(await readyz(base)).toEqual({ status: 200, body: { status: "ready" } });

    const down = next(worker, "worker:database", ({ reachable }) => !reachable);
    await server.stop();
    await down;
    const stopped = await readyz(base);
    expect(stopped.status).toBe(503);
    expect(stopped.body.reasons).toContain("database unreachable");

    const up = next(worker, "worker:database", ({ reachable }) => reachable);
    const relistening = next(worker, "worker:listening", ({ reconnected }) => reconnected);
    await server.start();
    await up;
    await relistening;
    // A claim round after the outage (the last one may be older than the bound by now).
    await next(worker, "worker:poll");
    expect(await readyz(base)).toEqual({ status: 200, body: { status: "ready" } });
  });
});

describe("punctual worker --metrics-port", () => {
  it("serves /metrics, /healthz and /readyz, and drains on SIGTERM with exit 0", async () => {
    const worker = spawnTs(
      "src/cli/main.ts",
      ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--poll-interval", "20", "--poll-only", "--metrics-port", "0"],
      { DATABASE_URL: db.url, LOG_LEVEL: "debug" },
    );
    onTestFinished(() => void worker.child.kill("SIGKILL"));
    const serving = await worker.logLine((line) => line.msg === "serving /metrics, /healthz and /readyz");
    const address = serving.address as AddressInfo;
    expect(address.address).toBe("127.0.0.1");
    const base = `http://127.0.0.1:${address.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    const { id } = await createClient({ executor: db.pool }).enqueue(hello, { name: "metrics" });
    await worker.logLine((line) => line.msg === "job succeeded" && line.job === id);
    const { samples } = await scrape(base);
    expect(samples.get('punctual_jobs_succeeded_total{task="hello",queue="default"}')).toBe(1);
    expect(samples.get('punctual_job_run_duration_seconds_count{task="hello",queue="default"}')).toBe(1);
    expect(samples.get('punctual_queue_due_jobs{queue="default"}')).toBe(0);
    // The process metrics come with the CLI.
    expect(samples.has("process_resident_memory_bytes")).toBe(true);
    // Poll-only: ready once a claim has completed (the one that took the job).
    expect(await readyz(base)).toEqual({ status: 200, body: { status: "ready" } });

    worker.child.kill("SIGTERM");
    expect(await worker.exit).toBe(0);
  });

  it.concurrent.for<[string, string[], RegExp]>([
    ["a port that is not a number", ["--metrics-port", "http"], /^punctual: --metrics-port must be an integer of 0 or more; got "http" \(see punctual --help\)$/],
    ["a port out of range", ["--metrics-port", "70000"], /^punctual: --metrics-port must be a port from 0 to 65535; got "70000" \(see punctual --help\)$/],
    ["a host without a port", ["--metrics-host", "0.0.0.0"], /^punctual: --metrics-host is only used with --metrics-port \(see punctual --help\)$/],
    ["a port without its value", ["--metrics-port"], /^punctual: --metrics-port needs a value \(see punctual --help\)$/],
  ])("refuses %s with one line naming it, exit 2", async ([_what, args, message], { expect }) => {
    const run = spawnTs("src/cli/main.ts", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", ...args], {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
    });
    expect(await run.exit).toBe(2);
    expect(run.output().trim()).toMatch(message);
  });
});
