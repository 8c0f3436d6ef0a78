/**
 * graphile-worker 0.18.0 as a bench peer.
 *
 * - "defaults": `run({ concurrency })`, everything else at its defaults (pollInterval 2000,
 *   maxPoolSize 10, no local queue, no completion batching).
 * - "best": the batching options of https://worker.graphile.org/docs/performance#batching, set
 *   as in that page's own benchmark: `preset.worker.localQueue: { size: 500 }`,
 *   `preset.worker.completeJobBatchDelay: 0`, `preset.worker.failJobBatchDelay: 0`, and
 *   `maxPoolSize` at the documented "10 or concurrentJobs + 2, whichever is larger".
 *
 * Both modes: `noHandleSignals: true`, a silent Logger, pollInterval left at its default.
 * Enqueue uses a WorkerUtils (`addJob`, `addJobs`). Its cron is minute-grained, so there is
 * no `schedulePerSecond`.
 */
import { Logger, makeWorkerUtils, run, type RunnerOptions } from "graphile-worker";
import type { BenchPayload, SystemModule } from "./types.js";

const TASK = "noop";
const SCHEMA = "graphile_worker";
const silent = new Logger(() => () => {});

const graphileWorker: SystemModule = {
  id: "graphile-worker",
  label: "graphile-worker 0.18.0",
  store: "postgres",
  jobTables: [`${SCHEMA}._private_jobs`],
  periodicNote: "cron is minute-grained",

  async open(ctx) {
    const utils = await makeWorkerUtils({ connectionString: ctx.dbUrl, logger: silent });
    await utils.migrate();
    const sql = async (text: string, values?: unknown[]) => utils.withPgClient((client) => client.query(text, values));
    const sumOverSchema = async (expr: string, from: string) =>
      Number((await sql(`select coalesce(sum(${expr}), 0)::bigint as v from ${from}`, [SCHEMA])).rows[0].v);

    return {
      async reset() {
        // 0.18 keeps jobs in _private_jobs, named queues in _private_job_queues and cron
        // bookkeeping in _private_known_crontabs. Task identifiers stay: they are not jobs,
        // and running workers cache their ids.
        await sql(
          `truncate ${SCHEMA}._private_jobs, ${SCHEMA}._private_job_queues, ${SCHEMA}._private_known_crontabs`,
        );
      },
      async enqueueOne(payload, runAt) {
        await utils.addJob(TASK, payload, runAt ? { runAt } : undefined);
      },
      async enqueueBatch(jobs) {
        await utils.addJobs(jobs.map((j) => ({ identifier: TASK, payload: j.payload, runAt: j.runAt })));
      },
      async seedScale(future) {
        // `finished` is not seeded: graphile-worker deletes a job when it completes, so a
        // deployment that has run N jobs holds no rows for them. (Permanently failed jobs
        // would be rows it really keeps, but they stand for failures, not history.)
        // Future jobs go through the documented SQL API, graphile_worker.add_jobs, 50,000
        // per call, each with a job key like a per-user schedule, due about a year ahead.
        const chunk = 50_000;
        for (let from = 0; from < future; from += chunk) {
          await sql(
            `select count(*) from ${SCHEMA}.add_jobs((
               select array_agg((
                 $1, json_build_object('n', i), null,
                 now() + interval '365 days' + (i % 86400) * interval '1 second',
                 null, 'user:' || i, null, null
               )::${SCHEMA}.job_spec)
               from generate_series($2::int, $3::int) as i
             ))`,
            [TASK, from, Math.min(from + chunk, future) - 1],
          );
        }
      },
      storageBytes: () =>
        sumOverSchema(
          "pg_total_relation_size(c.oid)",
          "pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r'",
        ),
      deadTuples: () => sumOverSchema("n_dead_tup", "pg_stat_user_tables where schemaname = $1"),
      async close() {
        await utils.release();
      },
    };
  },

  async startWorker(ctx, spec) {
    const options: RunnerOptions = {
      connectionString: ctx.dbUrl,
      concurrency: spec.concurrency,
      noHandleSignals: true,
      logger: silent,
      taskList: {
        [TASK]: async (payload) => {
          spec.onJob(payload as BenchPayload);
        },
      },
    };
    if (spec.mode === "best") {
      options.maxPoolSize = Math.max(10, spec.concurrency + 2);
      options.preset = {
        worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
      };
    }
    const runner = await run(options);
    return {
      async stop() {
        await runner.stop().catch(() => {}); // rejects only if the runner already stopped itself
        await runner.promise.catch(() => {});
      },
    };
  },
};

export default graphileWorker;
