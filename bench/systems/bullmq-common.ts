/** What the two BullMQ adapters (PostgreSQL and Redis backends) do alike. */
import type { JobsOptions } from "bullmq";
import type { BenchPayload, SystemHandle } from "./types.js";

/** The part of a BullMQ Queue the bench uses; both backends' queues have it. */
interface BullQueue {
  add(name: string, data: BenchPayload, opts?: JobsOptions): Promise<unknown>;
  addBulk(jobs: { name: string; data: BenchPayload; opts?: JobsOptions }[]): Promise<unknown>;
  upsertJobScheduler(id: string, repeat: { pattern: string }, template: { name: string; data: BenchPayload }): Promise<unknown>;
}

const delayOpts = (runAt?: Date): JobsOptions | undefined =>
  runAt ? { delay: Math.max(0, runAt.getTime() - Date.now()) } : undefined;

/** Enqueue and every-second schedules (`* * * * * *`: on the second) through the queue. */
export function bullmqEnqueue(queue: BullQueue): Pick<SystemHandle, "enqueueOne" | "enqueueBatch" | "schedulePerSecond"> {
  return {
    async enqueueOne(payload, runAt) {
      await queue.add("noop", payload, delayOpts(runAt));
    },
    async enqueueBatch(jobs) {
      await queue.addBulk(jobs.map((j) => ({ name: "noop", data: j.payload, opts: delayOpts(j.runAt) })));
    },
    async schedulePerSecond(count) {
      const upsert = (s: number) =>
        queue.upsertJobScheduler(`s${s}`, { pattern: "* * * * * *" }, { name: "noop", data: { n: 0, s } });
      await Promise.all(Array.from({ length: count }, (_, s) => upsert(s)));
    },
  };
}
