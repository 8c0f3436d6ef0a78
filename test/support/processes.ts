import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Starts a TypeScript fixture from test/fixtures in a child process with IPC. */
export function forkFixture(name: string, env: Record<string, string>): ChildProcess {
  const file = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
  return fork(file, [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

/** Resolves with the exit code (or signal) of a child process. */
export function exited(child: ChildProcess): Promise<number | NodeJS.Signals> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal!)));
}
