/**
 * pg-boss 12.35.0 as a bench peer. (Its package.json says node >= 22.12; it loads and runs on
 * Node 20 as used here.)
 *
 * - "defaults": one `work(queue, { batchSize: 10 }, handler)` loop; everything else at its
 *   defaults (pollingIntervalSeconds 2, localConcurrency 1). Note the loop waits the polling
 *   interval after every fetch, full or not, so this mode tops out near batchSize / 2 s.
 * - "best": `work(queue, { batchSize: 10, localConcurrency: spec.concurrency,
 *   pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }, handler)`: `localConcurrency` loops
 *   of 10 ("10 loops x batch 10" at concurrency 10), the documented minimum polling interval,
 *   and the documented burst mode, which re-fetches at once while fetches come back full.
 *
 * Constructor options stay at their defaults in both modes (maintenance, cron and
 * LISTEN/NOTIFY as shipped: supervise and schedule on, useListenNotify off).
 * Its cron files at most one job per 60-second slot, so there is no `schedulePerSecond`.
 */
import { PgBoss } from "pg-boss";
import type { BenchPayload, SystemModule } from "./types.js";

const QUEUE = "noop";
const SCHEMA = "pgboss";

async function startBoss(dbUrl: string): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: dbUrl });
  boss.on("error", (err) => console.error(`pg-boss: ${err.message}`));
  await boss.start(); // installs or migrates the schema
  return boss;
}

const pgBoss: SystemModule = {
  id: "pg-boss",
  label: "pg-boss 12.35.0",
  store: "postgres",
  // Partitioned by queue name: VACUUM and ANALYZE of the parent cover its partitions
  // (this queue lives in the default one, job_common).
  jobTables: [`${SCHEMA}.job`],
  periodicNote: "cron is minute-grained",

  async open(ctx) {
    const boss = await startBoss(ctx.dbUrl);
    if (!(await boss.getQueue(QUEUE))) await boss.createQueue(QUEUE);
    const db = boss.getDb();
    const sumOverSchema = async (expr: string, from: string) =>
      Number((await db.executeSql(`select coalesce(sum(${expr}), 0)::bigint as v from ${from}`, [SCHEMA])).rows[0].v);
    // Rows as `insert` would write them, the queue's settings copied from pgboss.queue.
    const seed = (state: string, times: string, count: number) =>
      db.executeSql(
        `insert into ${SCHEMA}.job (name, data, state, start_after, created_on, started_on, completed_on,
           keep_until, policy, retry_limit, retry_delay, retry_backoff, expire_seconds, deletion_seconds)
         select q.name, jsonb_build_object('n', i), '${state}', t.start_after, t.created_on, t.started_on,
           t.completed_on, t.start_after + q.retention_seconds * interval '1 second', q.policy,
           q.retry_limit, q.retry_delay, q.retry_backoff, q.expire_seconds, q.deletion_seconds
         from ${SCHEMA}.queue q, generate_series(1, $1::int) as i, lateral (${times}) as t
         where q.name = $2`,
        [count, QUEUE],
      );

    return {
      async reset() {
        await db.executeSql(`truncate ${SCHEMA}.job, ${SCHEMA}.job_dependency, ${SCHEMA}.schedule`);
      },
      async enqueueOne(payload, runAt) {
        await boss.send(QUEUE, payload, runAt ? { startAfter: runAt } : undefined);
      },
      async enqueueBatch(jobs) {
        await boss.insert(QUEUE, jobs.map((j) => ({ data: j.payload, startAfter: j.runAt })));
      },
      async seedScale(future, finished) {
        // Straight SQL into pgboss.job (one statement per kind): `future` created jobs due about
        // a year ahead, `finished` jobs completed over the last few hours (inside the 7-day
        // deleteAfterSeconds, so maintenance keeps them).
        await seed(
          "created",
          `select now() + interval '365 days' + (i % 86400) * interval '1 second' as start_after,
             now() as created_on, null::timestamptz as started_on, null::timestamptz as completed_on`,
          future,
        );
        await seed(
          "completed",
          `select now() - (i % 10000) * interval '1 second' - interval '1 second' as start_after,
             now() - (i % 10000) * interval '1 second' - interval '1 second' as created_on,
             now() - (i % 10000) * interval '1 second' as started_on,
             now() - (i % 10000) * interval '1 second' as completed_on`,
          finished,
        );
        await db.executeSql(`analyze ${SCHEMA}.job`);
      },
      storageBytes: () =>
        sumOverSchema(
          "pg_total_relation_size(c.oid)",
          "pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r'",
        ),
      deadTuples: () => sumOverSchema("n_dead_tup", "pg_stat_user_tables where schemaname = $1"),
      close: () => boss.stop({ graceful: true, close: true }),
    };
  },

  async startWorker(ctx, spec) {
    const boss = await startBoss(ctx.dbUrl);
    const options =
      spec.mode === "best"
        ? { batchSize: 10, localConcurrency: spec.concurrency, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }
        : { batchSize: 10 };
    await boss.work<BenchPayload>(QUEUE, options, async (jobs) => {
      for (const job of jobs) spec.onJob(job.data);
    });
    return { stop: () => boss.stop({ graceful: true, close: true }) };
  },
};

export default pgBoss;
