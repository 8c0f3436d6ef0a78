/**
 * BullMQ 6.7.0 on its PostgreSQL backend (createPostgresBackend), in ctx.dbUrl,
 * schema "bullmq" (DEFAULT_SCHEMA), queue "bench". open() runs runMigrations.
 *
 * Options, both modes: Queue defaultJobOptions { removeOnComplete: true } (each
 * job is deleted when it completes, so finished jobs do not pile up; same in the
 * Redis adapter) and Worker { concurrency }; every other option is BullMQ's
 * default (Queue and Worker each get a connection string, so each owns a pg pool
 * of node-postgres' default size, 10, plus a LISTEN connection for the worker).
 * "best" = "defaults": open-source BullMQ documents no batching or throughput
 * option beyond `concurrency` (batches are a BullMQ Pro feature).
 *
 * Periodic: one job scheduler per schedule, pattern "* * * * * *" (6-field cron,
 * every second on the second).
 */
import { createPostgresBackend, DEFAULT_SCHEMA, runMigrations, withBackend } from "bullmq";
import pg from "pg";
import { bullmqEnqueue } from "./bullmq-common.js";
import type { BenchPayload, SystemModule } from "./types.js";

const { Queue, Worker } = withBackend(createPostgresBackend);
const NAME = "bench";


const system: SystemModule = {
  id: "bullmq-postgres",
  label: "BullMQ 6.7.0 (PostgreSQL)",
  store: "postgres",
  jobTables: [`${DEFAULT_SCHEMA}.job`],

  async open(ctx) {
    // Our own small pool, for migrations, reset, seeding and statistics.
    const pool = new pg.Pool({ connectionString: ctx.dbUrl, max: 2 });
    const client = await pool.connect();
    try {
      await runMigrations(client, DEFAULT_SCHEMA);
    } finally {
      client.release();
    }
    const connection = { connectionString: ctx.dbUrl };
    const queue = new Queue<BenchPayload>(NAME, { connection, defaultJobOptions: { removeOnComplete: true } });
    await queue.waitUntilReady();
    const tables = async () =>
      (await pool.query<{ t: string }>(
        `select format('%I.%I', schemaname, tablename) as t from pg_tables
          where schemaname = $1 and tablename <> 'migration'`,
        [DEFAULT_SCHEMA],
      )).rows.map((r) => r.t);

    return {
      async reset() {
        // Schedulers first (so running workers stop creating their next jobs), then
        // one TRUNCATE of every BullMQ table (jobs, events, meta, ...) but the
        // migration ledger, with a short lock_timeout, retried, so that a worker
        // still running does not deadlock with it.
        const sql = `truncate ${(await tables()).join(", ")}`;
        const client = await pool.connect();
        try {
          await client.query(`delete from ${DEFAULT_SCHEMA}.scheduler`);
          for (let attempt = 1; ; attempt++) {
            try {
              await client.query("begin");
              await client.query("set local lock_timeout = '200ms'");
              await client.query(sql);
              await client.query("commit");
              return;
            } catch (err) {
              await client.query("rollback");
              if (!["55P03", "40P01"].includes((err as { code?: string }).code ?? "") || attempt === 50) throw err;
            }
          }
        } finally {
          client.release();
        }
      },
      ...bullmqEnqueue(queue),
      async seedScale(future, finished) {
        // Straight into bullmq.job, rows as addBulk and a worker write them (ids
        // from the queue's own id sequence, FIFO order from job_seq); no events.
        const now = Date.now();
        const delay = 365 * 24 * 3600 * 1000;
        const insert = (state: "delayed" | "completed") => `
          insert into ${DEFAULT_SCHEMA}.job (queue, id, seq, name, state, data, opts, delay_ms, max_attempts,
            attempts_made, attempts_started, return_value, added_at_ms, process_at_ms, processed_at_ms, finished_at_ms)
          select $1, ${DEFAULT_SCHEMA}.next_job_id($1), nextval('${DEFAULT_SCHEMA}.job_seq'), 'noop', '${state}',
            jsonb_build_object('n', g), $3::jsonb, $4, 0, $5, $5, $6::jsonb, $7, $8, $9, $9
          from generate_series(0, $2::int - 1) g`;
        await pool.query(insert("delayed"), [
          NAME, future, JSON.stringify({ delay, attempts: 0, removeOnComplete: true }), delay, 0, null, now, now + delay, null,
        ]);
        await pool.query(insert("completed"), [
          NAME, finished, JSON.stringify({ attempts: 0, removeOnComplete: false }), 0, 1, "null", now, null, now,
        ]);
        await pool.query(`analyze ${DEFAULT_SCHEMA}.job`);
      },
      async storageBytes() {
        const { rows } = await pool.query(
          `select coalesce(sum(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0)::bigint as b
             from pg_tables where schemaname = $1`,
          [DEFAULT_SCHEMA],
        );
        return Number(rows[0].b);
      },
      async deadTuples() {
        const { rows } = await pool.query(
          "select coalesce(sum(n_dead_tup), 0)::bigint as d from pg_stat_user_tables where schemaname = $1",
          [DEFAULT_SCHEMA],
        );
        return Number(rows[0].d);
      },
      async close() {
        await queue.close();
        await pool.end();
      },
    };
  },

  async startWorker(ctx, spec) {
    const worker = new Worker<BenchPayload>(NAME, async (job) => spec.onJob(job.data), {
      connection: { connectionString: ctx.dbUrl },
      concurrency: spec.concurrency,
    });
    await worker.waitUntilReady();
    return { stop: () => worker.close() };
  },
};

export default system;
