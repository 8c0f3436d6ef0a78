/**
 * Punctual itself. Its defaults are its fast path (claims ahead into a bounded buffer,
 * outcomes in batches, LISTEN/NOTIFY plus a timer for the next run_at). "best" adds
 * `retention: 0`: a one-off job's row is deleted as its success is recorded, as
 * graphile-worker deletes a finished job, instead of being kept for a day (the default)
 * and pruned. Workloads that say how long finished jobs are kept (steady state) keep
 * them that long in both modes.
 */
import pg from "pg";
import { pino } from "pino";
import { z } from "zod";
import type * as Punctual from "../../src/index.js";
import type { BenchPayload, SystemModule, WorkerSpec } from "./types.js";

// The built package (dist/, `npm run build`, which `npm run bench` runs first), as the
// peers are measured from theirs in node_modules and as users run it: through tsx, the
// source pays esbuild's helpers (a name for every function made) on every job. Typed by
// the source; loaded by URL so that type-checking needs no build.
const { createClient, createWorker, defineTask, migrate }: typeof Punctual = await import(new URL("../../dist/index.js", import.meta.url).href);

const payload = z.object({ n: z.number(), t: z.number().optional(), s: z.number().optional() });
const silent = pino({ level: "silent" });

function noopTask(onJob: (p: BenchPayload) => void = () => {}, effect?: WorkerSpec["effect"], pool?: pg.Pool) {
  if (!effect || !pool) return defineTask({ name: "noop", payload, run: (p) => onJob(p) });
  return defineTask({
    name: "noop",
    payload,
    run: async (p, ctx) => {
      onJob(p);
      if (effect === "write") {
        await pool.query("insert into bench_effects (job_id) values ($1)", [ctx.job.id]);
        return;
      }
      // The write and the job's success in one transaction (ctx.complete).
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query("insert into bench_effects (job_id) values ($1)", [ctx.job.id]);
        await ctx.complete(client);
        await client.query("commit");
      } catch (error) {
        await client.query("rollback").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
  });
}

const punctual: SystemModule = {
  id: "punctual",
  label: `Punctual ${process.env.npm_package_version ?? "0.1.0"}`,
  store: "postgres",
  jobTables: ["punctual.jobs"],
  effects: ["write", "transactional"],

  async open(ctx) {
    await migrate(ctx.dbUrl);
    const pool = new pg.Pool({ connectionString: ctx.dbUrl, max: 10 });
    await pool.query("create table if not exists bench_effects (job_id bigint not null)");
    const client = createClient({ executor: pool });
    const noop = noopTask();
    const one = async (sql: string) => Number((await pool.query(sql)).rows[0].v);
    return {
      async reset() {
        await pool.query("truncate punctual.jobs, bench_effects");
      },
      async enqueueOne(p, runAt) {
        await client.enqueue(noop, p, runAt ? { runAt } : {});
      },
      async enqueueBatch(jobs) {
        await client.enqueueMany(jobs.map((j) => ({ task: noop, payload: j.payload, runAt: j.runAt })));
      },
      async schedulePerSecond(count) {
        await client.scheduleMany(
          Array.from({ length: count }, (_, s) => ({ task: noop, key: `tick:${s}`, payload: { n: 0, s }, rule: { cron: "* * * * * *" } })),
        );
      },
      async seedScale(future, finished) {
        // Rows as the app would have them: one live daily schedule per user (08:00 in
        // one of a few zones), and finished one-off jobs awaiting pruning. Written with
        // one INSERT each, as `scheduleMany` would take minutes for a million users.
        await pool.query(
          `insert into punctual.jobs (task, payload, key, cron, tz, slot_at, run_at)
           select 'noop', jsonb_build_object('n', i), 'user:' || i, '0 8 * * *',
                  (array['Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'UTC'])[1 + i % 4],
                  now() + interval '1 day' + (i % 86400) * interval '1 second',
                  now() + interval '1 day' + (i % 86400) * interval '1 second'
           from generate_series(1, $1::int) as i`,
          [future],
        );
        await pool.query(
          `insert into punctual.jobs (task, payload, state, attempts, started_at, finished_at, run_at)
           select 'noop', jsonb_build_object('n', i), 'succeeded', 1, now(), now(), now() - interval '1 minute'
           from generate_series(1, $1::int) as i`,
          [finished],
        );
        await pool.query("vacuum analyze punctual.jobs");
      },
      storageBytes: () => one("select pg_total_relation_size('punctual.jobs') as v"),
      deadTuples: () => one("select n_dead_tup as v from pg_stat_user_tables where relid = 'punctual.jobs'::regclass"),
      async close() {
        await pool.end();
      },
    };
  },

  async startWorker(ctx, spec) {
    // The handlers' own writes go through a pool of the app's, as an app's would.
    const appPool = spec.effect ? new pg.Pool({ connectionString: ctx.dbUrl, max: spec.concurrency }) : undefined;
    const worker = createWorker({
      connectionString: ctx.dbUrl,
      tasks: [noopTask(spec.onJob, spec.effect, appPool)],
      concurrency: spec.concurrency,
      logger: silent,
      ...(spec.mode === "best" && { retention: 0 }),
      ...(spec.keepFinishedMs !== undefined && { retention: spec.keepFinishedMs, pruneIntervalMs: 5_000 }),
    });
    await worker.start();
    return {
      stop: async () => {
        await worker.stop();
        await appPool?.end();
      },
    };
  },
};

export default punctual;
