/**
 * One worker process of `npm run bench`: loads a system, waits for the parent's "go"
 * (so that the workers of a fleet start together, not one process boot apart), starts
 * the system's worker and reports every handler start to the parent (batched every
 * 50 ms over the IPC channel), until the parent says stop. On "cpu" it answers with the
 * CPU the process has used since just before the worker started (process.cpuUsage():
 * every thread of the process, user + system), which leaves out Node's boot and the
 * loading of modules.
 */
import type { BenchContext, SystemModule } from "../systems/types.js";
import { startProfilers } from "./profile.js";
import { loadSystem } from "./systems.js";

export interface ChildArgs {
  system: string;
  ctx: BenchContext;
  concurrency: number;
  mode: "defaults" | "best";
  keepFinishedMs?: number;
  effect?: "write" | "transactional";
}

/** A handler start: [n, t (intended start, ms), s (schedule), at (actual start, ms)]. */
export type Start = [number, number | null, number | null, number];

export type ChildMessage =
  | { type: "loaded" }
  | { type: "ready" }
  | { type: "starts"; starts: Start[] }
  /** CPU microseconds (user + system) since just before the worker started. */
  | { type: "cpu"; micros: number }
  | { type: "stopped" };

/** What the parent sends. */
export type ParentMessage = "go" | "cpu" | "stop";

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

const go = new Promise<void>((resolve) => {
  const onGo = (message: ParentMessage) => {
    if (message !== "go") return;
    process.off("message", onGo);
    resolve();
  };
  process.on("message", onGo);
});
await send({ type: "loaded" });
await go;

// CPU_PROFILE / HEAP_PROFILE (bench/profile-process.ts with WORKERS): V8 profiles of
// this process from here to the parent's "cpu", one file per process (name.pid).
const stopProfilers = await startProfilers();
const cpuAtStart = process.cpuUsage();
const flusher = setInterval(() => void flush(), 50);
const worker = await system.startWorker(args.ctx, {
  concurrency: args.concurrency,
  mode: args.mode,
  keepFinishedMs: args.keepFinishedMs,
  effect: args.effect,
  onJob: (p) => pending.push([p.n, p.t ?? null, p.s ?? null, Date.now()]),
});
await send({ type: "ready" });

process.on("message", async (message: ParentMessage) => {
  if (message === "cpu") {
    const used = process.cpuUsage(cpuAtStart);
    await stopProfilers(`.${process.pid}`);
    await send({ type: "cpu", micros: used.user + used.system });
    return;
  }
  if (message !== "stop") return;
  await worker.stop();
  clearInterval(flusher);
  await flush();
  await send({ type: "stopped" });
  process.disconnect();
});
