/** Worker processes for one measurement, and the handler starts they report. */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { BenchContext } from "../systems/types.js";
import type { ChildArgs, ChildMessage, Start } from "./child.js";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

export class Fleet {
  readonly starts: Start[] = [];
  private listeners = new Set<() => void>();
  private constructor(private readonly children: ChildProcess[]) {}

  /** Forks `processes` workers of `system` and resolves once all of them run. */
  static async start(system: string, ctx: BenchContext, processes: number, concurrency: number, mode: ChildArgs["mode"], keepFinishedMs?: number) {
    const children: ChildProcess[] = [];
    const fleet = new Fleet(children);
    await Promise.all(
      Array.from({ length: processes }, () => {
        const args: ChildArgs = { system, ctx, concurrency, mode, keepFinishedMs };
        const child = fork(CHILD, [JSON.stringify(args)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
        children.push(child);
        return new Promise<void>((resolve, reject) => {
          child.on("message", (message: ChildMessage) => {
            if (message.type === "ready") resolve();
            if (message.type === "starts") {
              for (const s of message.starts) fleet.starts.push(s);
              for (const listener of fleet.listeners) listener();
            }
          });
          child.on("exit", (code) => code !== 0 && reject(new Error(`${system} worker exited with code ${code}`)));
        });
      }),
    );
    return fleet;
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
            child.send("stop");
          }),
      ),
    );
  }
}
