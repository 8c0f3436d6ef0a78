import type { Worker, WorkerEvents } from "../../src/index.js";

/** Resolves with the arguments of the first `count` emissions of `event`. */
export function collect<E extends keyof WorkerEvents>(
  worker: Worker,
  event: E,
  count: number,
  filter: (...args: WorkerEvents[E]) => boolean = () => true,
): Promise<WorkerEvents[E][]> {
  return new Promise((resolve) => {
    const seen: WorkerEvents[E][] = [];
    const listener = (...args: WorkerEvents[E]) => {
      if (!filter(...args)) return;
      seen.push(args);
      if (seen.length === count) {
        worker.off(event, listener as never);
        resolve(seen);
      }
    };
    worker.on(event, listener as never);
  });
}

/** Resolves with the arguments of the next emission of `event` that passes `filter`. */
export async function next<E extends keyof WorkerEvents>(
  worker: Worker,
  event: E,
  filter?: (...args: WorkerEvents[E]) => boolean,
): Promise<WorkerEvents[E]> {
  const [args] = await collect(worker, event, 1, filter);
  return args!;
}
