/**
 * BullMQ 6.7.0 on Redis (ctx.redisUrl). Queue "bench" under the key prefix
 * "punctual-bench", so reset deletes only the bench's keys.
 *
 * Options, both modes: Queue defaultJobOptions { removeOnComplete: true } (each
 * job is deleted when it completes, so finished jobs do not pile up; same in the
 * PostgreSQL adapter) and Worker { concurrency }; every other option is BullMQ's
 * default.
 * "best" = "defaults": open-source BullMQ documents no batching or throughput
 * option beyond `concurrency` (batches are a BullMQ Pro feature).
 *
 * Periodic: one job scheduler per schedule, pattern "* * * * * *" (6-field cron,
 * every second on the second). storageBytes: Redis `used_memory` (whole server,
 * which holds only the bench's keys while it runs).
 */
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { bullmqEnqueue } from "./bullmq-common.js";
import type { BenchContext, BenchPayload, SystemModule } from "./types.js";

const NAME = "bench";
const PREFIX = "punctual-bench";
const SEED_CHUNK = 5_000;


const connect = (ctx: BenchContext) => ({ connection: { url: ctx.redisUrl }, prefix: PREFIX });

const system: SystemModule = {
  id: "bullmq-redis",
  label: "BullMQ 6.7.0 (Redis)",
  store: "redis",

  async open(ctx) {
    const queue = new Queue<BenchPayload>(NAME, { ...connect(ctx), defaultJobOptions: { removeOnComplete: true } });
    await queue.waitUntilReady();
    const redis = new Redis(ctx.redisUrl); // for INFO and reset only

    return {
      async reset() {
        // Schedulers first (so running workers stop re-creating their next jobs),
        // then every key under the prefix, which is the bench's alone.
        const schedulers = await queue.getJobSchedulers(0, -1);
        await Promise.all(schedulers.map((s) => queue.removeJobScheduler(s.key)));
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${PREFIX}:*`, "COUNT", 10_000);
          if (keys.length > 0) await redis.unlink(...keys);
          cursor = next;
        } while (cursor !== "0");
      },
      ...bullmqEnqueue(queue),
      async seedScale(future, finished) {
        // Future jobs through addBulk, 4 chunks in flight (faster than 1 on this box).
        const delay = 365 * 24 * 3600 * 1000;
        let next = 0;
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (next < future) {
              const from = next;
              next = Math.min(future, from + SEED_CHUNK);
              const jobs = Array.from({ length: next - from }, (_, k) => ({ name: "noop", data: { n: from + k }, opts: { delay } }));
              await queue.addBulk(jobs);
            }
          }),
        );
        // Finished jobs: written as BullMQ stores a completed job (a hash per job
        // plus the "completed" sorted set by finishedOn), ids taken from its counter.
        const key = `${PREFIX}:${NAME}`;
        const firstId = (await redis.incrby(`${key}:id`, finished)) - finished + 1;
        for (let i = 0; i < finished; i += SEED_CHUNK) {
          const batch = redis.pipeline();
          const now = Date.now();
          for (let k = i; k < Math.min(finished, i + SEED_CHUNK); k++) {
            const id = firstId + k;
            batch.hset(`${key}:${id}`, {
              name: "noop", data: JSON.stringify({ n: k }), opts: '{"attempts":0,"removeOnComplete":false}', timestamp: now, delay: 0,
              priority: 0, processedOn: now, ats: 1, atm: 1, returnvalue: "null", finishedOn: now,
            });
            batch.zadd(`${key}:completed`, now, id);
          }
          await batch.exec();
        }
      },
      async storageBytes() {
        const info = await redis.info("memory");
        return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
      },
      async deadTuples() {
        return null;
      },
      async close() {
        await queue.close();
        redis.disconnect();
      },
    };
  },

  async startWorker(ctx, spec) {
    const worker = new Worker<BenchPayload>(NAME, async (job) => spec.onJob(job.data), {
      ...connect(ctx),
      concurrency: spec.concurrency,
    });
    await worker.waitUntilReady();
    return { stop: () => worker.close() };
  },
};

export default system;
