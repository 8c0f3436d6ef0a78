import type { IncomingMessage, ServerResponse } from "node:http";
import type pg from "pg";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { JobEvent, WorkerEvents } from "../worker/events.js";
import type { Worker } from "../worker/worker.js";
import { QueueStats, type QueueStatsOptions } from "./queue-stats.js";
import { defaultClaimStaleMs, readiness, type Readiness } from "./readiness.js";

export interface MetricsOptions {
  /**
   * Where the metrics are registered. Default: a registry of their own (so two workers
   * in one process do not collide). Pass prom-client's `register` to serve them with
   * your app's other metrics; one worker per registry.
   */
  registry?: Registry;
  /**
   * The pool the per-queue gauges query (one statement every `queueStats.intervalMs` at
   * most, only while scraped). Default: the worker's own pool.
   */
  pool?: pg.Pool;
  /** Tuning of the per-queue gauges, or `false` for none (no query at all). */
  queueStats?: QueueStatsOptions | false;
  /**
   * How long the worker may go without a completed claim before `/readyz` fails (while
   * a slot is free). Default max(3 × pollIntervalMs, 15,000) ms.
   */
  claimStaleMs?: number;
  /** Also register prom-client's default Node.js process metrics (CPU, memory, event loop lag). Default false. */
  processMetrics?: boolean;
}

/** A worker's metrics and probes, ready to serve. */
export interface WorkerMetrics {
  /**
   * A plain Node request handler (`node:http`, Express, Fastify's raw server, ...):
   * `GET /metrics` (Prometheus text), `GET /healthz` (200 while the process serves),
   * `GET /readyz` (200 when ready, else 503 with the reasons as JSON); 404 otherwise.
   */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The registry the metrics are in. */
  registry: Registry;
  /** What `/readyz` would answer now. */
  readiness(): Readiness;
  /** Stops listening to the worker's events and removes these metrics from the registry. */
  close(): void;
}

const LABELS = ["task", "queue"] as const;

type CountField = "claimed" | "succeeded" | "retried" | "failed" | "cancelled" | "lost";
/** One task and queue's counts since the metrics were created. */
type Series = { labels: { task: string; queue: string } } & Record<CountField, number>;

/** Seconds: from 5 ms to half an hour. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
/** Seconds: from 5 ms (a job started on time) to an hour (a backlog). */
const LATENESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];

/**
 * Prometheus metrics and Kubernetes probes for a worker, built from its events (no
 * query per job) and, per queue, from one bounded statement refreshed at most every
 * 10 s while scraped. Labels are the task and the queue only, never a job's key or id,
 * so their number is bounded by the tasks and queues the app defines.
 *
 * @example
 * const worker = createWorker({ pool, tasks });
 * const metrics = createMetrics(worker);
 * http.createServer(metrics.handler).listen(9464);
 * await worker.start();
 */
export function createMetrics(worker: Worker, options: MetricsOptions = {}): WorkerMetrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  // Counts per task and queue, kept in plain fields: a job costs a few increments, and
  // prom-client's label hashing (about a microsecond a call) runs once per series per
  // scrape instead of once per job.
  const series = new Map<string, Series>();
  const counter = (name: string, help: string, field: CountField) =>
    new Counter({
      name,
      help,
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of series.values()) if (s[field] > 0) this.inc(s.labels, s[field]);
      },
    });
  counter("punctual_jobs_claimed_total", "Jobs claimed whose handler started.", "claimed");
  counter("punctual_jobs_succeeded_total", "Jobs whose success was recorded.", "succeeded");
  counter("punctual_jobs_retried_total", "Failed attempts put back to pending for a retry.", "retried");
  counter("punctual_jobs_failed_total", "Jobs that ended failed (no attempts left, or an error no retry can fix).", "failed");
  counter("punctual_jobs_cancelled_total", "Running jobs that ended cancelled (a cancel requested while they ran).", "cancelled");
  counter("punctual_jobs_lost_total", "Jobs whose outcome was not recorded: their lease had passed to another worker.", "lost");
  const rescued = new Counter({
    name: "punctual_jobs_rescued_total",
    help: "Jobs this worker took back from a worker whose lease expired, by the state they went to (pending, failed, cancelled).",
    labelNames: ["task", "state"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "punctual_job_run_duration_seconds",
    help: "How long jobs ran, from their start to their handler's return, by outcome event (succeeded, retried, failed).",
    labelNames: LABELS,
    buckets: DURATION_BUCKETS,
    registers,
  });
  const lateness = new Histogram({
    name: "punctual_job_lateness_seconds",
    help: "How late jobs started: start time minus run_at, on the database's clock as last measured.",
    labelNames: LABELS,
    buckets: LATENESS_BUCKETS,
    registers,
  });

  // Gauges read the worker when scraped: nothing on the hot path.
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge("punctual_worker_running_jobs", "Handlers running now.", () => worker.health().running);
  gauge("punctual_worker_free_slots", "Slots free for a handler now (concurrency minus running).", () => {
    const h = worker.health();
    return Math.max(0, h.concurrency - h.running);
  });
  gauge("punctual_worker_buffered_jobs", "Claimed jobs waiting in the worker's buffer for a slot.", () => worker.health().buffered);
  const claimStaleMs = options.claimStaleMs;
  const ready = () => readiness(worker.health(), Date.now(), claimStaleMs ?? defaultClaimStaleMs(worker.health().pollIntervalMs));
  gauge("punctual_worker_ready", "1 when /readyz answers 200, else 0.", () => (ready().ready ? 1 : 0));

  const names = [
    "punctual_jobs_claimed_total",
    "punctual_jobs_succeeded_total",
    "punctual_jobs_retried_total",
    "punctual_jobs_failed_total",
    "punctual_jobs_cancelled_total",
    "punctual_jobs_lost_total",
    "punctual_jobs_rescued_total",
    "punctual_job_run_duration_seconds",
    "punctual_job_lateness_seconds",
    "punctual_worker_running_jobs",
    "punctual_worker_free_slots",
    "punctual_worker_buffered_jobs",
    "punctual_worker_ready",
  ];

  if (options.queueStats !== false) {
    const stats = new QueueStats(
      () => options.pool ?? worker.connectionPool,
      () => worker.health().queues,
      options.queueStats ?? {},
    );
    const queueGauge = (name: string, help: string, read: (s: Awaited<ReturnType<QueueStats["get"]>>[number]) => number) => {
      names.push(name);
      return new Gauge({
        name,
        help,
        labelNames: ["queue"] as const,
        registers,
        async collect() {
          const rows = await stats.get();
          // A queue whose refresh failed shows no sample rather than a stale one.
          this.reset();
          for (const row of rows) this.labels(row.queue).set(read(row));
        },
      });
    };
    queueGauge("punctual_queue_due_jobs", "Pending jobs due now, per queue the worker serves (counted up to the cap, 10,000 by default).", (s) => s.due);
    queueGauge("punctual_queue_oldest_due_age_seconds", "Age of the oldest due pending job, per queue the worker serves (0 when none is due).", (s) => s.oldestDueAgeSeconds);
    queueGauge(
      "punctual_queue_scheduled_jobs",
      "Pending jobs due later, per queue the worker serves, among the first future rows of the table (up to the cap, 10,000 by default: beyond, a lower bound).",
      (s) => s.scheduled,
    );
    names.push("punctual_queue_stats_errors_total");
    new Counter({
      name: "punctual_queue_stats_errors_total",
      help: "Refreshes of the per-queue gauges that failed (the gauges show no sample until one succeeds).",
      registers,
      async collect() {
        // After this scrape's refresh, if it runs one.
        await stats.get();
        this.reset();
        this.inc(stats.failures);
      },
    });
  }
  if (options.processMetrics) collectDefaultMetrics({ register: registry });

  const of = (job: JobEvent): Series => {
    const id = `${job.task}\u0000${job.queue}`;
    let found = series.get(id);
    if (!found) {
      const labels = { task: job.task, queue: job.queue };
      found = { labels, claimed: 0, succeeded: 0, retried: 0, failed: 0, cancelled: 0, lost: 0 };
      series.set(id, found);
    }
    return found;
  };

  // The database's clock minus ours, read once per claim round rather than per job.
  let clockOffsetMs = worker.health().dbClockOffsetMs;
  const listeners: { [E in keyof WorkerEvents]?: (...args: WorkerEvents[E]) => void } = {
    "worker:poll": () => {
      clockOffsetMs = worker.health().dbClockOffsetMs;
    },
    "job:claimed": (job, { runAt }) => {
      const s = of(job);
      s.claimed += 1;
      lateness.observe(s.labels, Math.max(0, Date.now() + clockOffsetMs - runAt.getTime()) / 1000);
    },
    "job:succeeded": (job, { durationMs }) => {
      const s = of(job);
      s.succeeded += 1;
      duration.observe(s.labels, durationMs / 1000);
    },
    "job:retried": (job, { durationMs }) => {
      const s = of(job);
      s.retried += 1;
      duration.observe(s.labels, durationMs / 1000);
    },
    "job:failed": (job, { state, durationMs }) => {
      const s = of(job);
      if (state === "cancelled") s.cancelled += 1;
      else s.failed += 1;
      if (durationMs !== undefined) duration.observe(s.labels, durationMs / 1000);
    },
    "job:lost": (job) => {
      of(job).lost += 1;
    },
    "job:rescued": (job) => rescued.labels(job.task, job.state).inc(),
  };
  for (const [event, listener] of Object.entries(listeners)) worker.on(event as keyof WorkerEvents, listener as never);

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void serve(req, res, registry, ready).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(`metrics failed: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  };

  return {
    handler,
    registry,
    readiness: ready,
    close() {
      for (const [event, listener] of Object.entries(listeners)) worker.off(event as keyof WorkerEvents, listener as never);
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, registry: Registry, ready: () => Readiness) {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/metrics" && path !== "/healthz" && path !== "/readyz") {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: try /metrics, /healthz or /readyz\n");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
    return;
  }
  const headOnly = req.method === "HEAD";
  if (path === "/metrics") {
    const body = await registry.metrics();
    res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" }).end(headOnly ? undefined : body);
  } else if (path === "/healthz") {
    // The process answers: that is all liveness means. A lost database is readiness's
    // business; restarting the pod would not bring it back.
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }).end(headOnly ? undefined : "ok\n");
  } else {
    const r = ready();
    const body = JSON.stringify(r.ready ? { status: "ready" } : { status: "not ready", reasons: r.reasons });
    res
      .writeHead(r.ready ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" })
      .end(headOnly ? undefined : `${body}\n`);
  }
}
