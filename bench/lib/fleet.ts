/** Worker processes for one measurement, and the handler starts they report. */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { BenchContext } from "../systems/types.js";
import type { ChildArgs, ChildMessage, ParentMessage, Start } from "./child.js";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

export class Fleet {
  readonly starts: Start[] = [];
  private listeners = new Set<() => void>();
  private cpuReplies = new Map<ChildProcess, (micros: number) => void>();
  /** One promise per child, settled when its worker runs (or the process exits). */
  private ready: Promise<void>[] = [];
  private constructor(private readonly children: ChildProcess[]) {}

  /** Forks `processes` workers of `system` and resolves once all of them run. */
  static async start(system: string, ctx: BenchContext, processes: number, concurrency: number, mode: ChildArgs["mode"], keepFinishedMs?: number) {
    const fleet = await Fleet.load(system, ctx, processes, concurrency, mode, keepFinishedMs);
    await fleet.go();
    return fleet;
  }

  /**
   * Forks `processes` workers of `system` and resolves once each has loaded its code;
   * none has started its worker yet (see `go`). Lets a measurement begin after the
   * processes' boot, and have them all start at the same moment.
   */
  static async load(
    system: string,
    ctx: BenchContext,
    processes: number,
    concurrency: number,
    mode: ChildArgs["mode"],
    keepFinishedMs?: number,
    effect?: ChildArgs["effect"],
  ) {
    const children: ChildProcess[] = [];
    const fleet = new Fleet(children);
    const ready: Promise<void>[] = [];
    await Promise.all(
      Array.from({ length: processes }, () => {
        const args: ChildArgs = { system, ctx, concurrency, mode, keepFinishedMs, effect };
        const child = fork(CHILD, [JSON.stringify(args)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
        children.push(child);
        const exited = new Promise<never>((_, reject) =>
          child.on("exit", (code) => code !== 0 && reject(new Error(`${system} worker exited with code ${code}`))),
        );
        exited.catch(() => {}); // reported through `loaded` or `ready`, whichever is pending
        const loaded = new Promise<void>((resolve) => child.on("message", (m: ChildMessage) => m.type === "loaded" && resolve()));
        ready.push(Promise.race([new Promise<void>((resolve) => child.on("message", (m: ChildMessage) => m.type === "ready" && resolve())), exited]));
        child.on("message", (message: ChildMessage) => {
          if (message.type === "starts") {
            for (const s of message.starts) fleet.starts.push(s);
            for (const listener of fleet.listeners) listener();
          }
          if (message.type === "cpu") {
            fleet.cpuReplies.get(child)?.(message.micros);
            fleet.cpuReplies.delete(child);
          }
        });
        return Promise.race([loaded, exited]);
      }),
    );
    fleet.ready = ready;
    return fleet;
  }

  /** Starts every loaded worker at once; resolves when all of them run. */
  async go(): Promise<void> {
    for (const child of this.children) child.send("go" satisfies ParentMessage);
    await Promise.all(this.ready);
  }

  /**
   * CPU seconds (user + system, all threads) the worker processes have used since
   * their workers started, as each process measures itself. Ask before `stop`.
   */
  async cpuSeconds(): Promise<number> {
    const micros = await Promise.all(
      this.children.map(
        (child) =>
          new Promise<number>((resolve) => {
            if (!child.connected) return resolve(Number.NaN);
            this.cpuReplies.set(child, resolve);
            child.send("cpu" satisfies ParentMessage);
          }),
      ),
    );
    return micros.reduce((a, b) => a + b, 0) / 1e6;
  }

  /** Resolves true once `done()` holds, false when `timeoutMs` passes first. */
  until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (done()) return resolve(true);
      const check = () => {
        if (!done()) return;
        finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(ok);
      };
      this.listeners.add(check);
    });
  }

  /** Asks every worker to stop gracefully; resolves when the processes have exited. */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
            child.on("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            child.send("stop" satisfies ParentMessage);
          }),
      ),
    );
  }
}
