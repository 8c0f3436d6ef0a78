/**
 * One worker process of `npm run bench`: starts a system's worker and reports every
 * handler start to the parent (batched every 50 ms over the IPC channel), until the
 * parent says stop.
 */
import type { BenchContext, SystemModule } from "../systems/types.js";
import { loadSystem } from "./systems.js";

export interface ChildArgs {
  system: string;
  ctx: BenchContext;
  concurrency: number;
  mode: "defaults" | "best";
  keepFinishedMs?: number;
}

/** A handler start: [n, t (intended start, ms), s (schedule), at (actual start, ms)]. */
export type Start = [number, number | null, number | null, number];

export type ChildMessage = { type: "ready" } | { type: "starts"; starts: Start[] } | { type: "stopped" };

const args = JSON.parse(process.argv[2]!) as ChildArgs;
const system: SystemModule = await loadSystem(args.system);
let pending: Start[] = [];
const send = (message: ChildMessage) => new Promise<void>((resolve) => process.send!(message, () => resolve()));
const flush = async () => {
  if (pending.length === 0) return;
  const starts = pending;
  pending = [];
  await send({ type: "starts", starts });
};
const flusher = setInterval(() => void flush(), 50);

const worker = await system.startWorker(args.ctx, {
  concurrency: args.concurrency,
  mode: args.mode,
  keepFinishedMs: args.keepFinishedMs,
  onJob: (p) => pending.push([p.n, p.t ?? null, p.s ?? null, Date.now()]),
});
await send({ type: "ready" });

process.on("message", async (message) => {
  if (message !== "stop") return;
  await worker.stop();
  clearInterval(flusher);
  await flush();
  await send({ type: "stopped" });
  process.disconnect();
});
