import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface Spawned {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first JSON log line (stdout) that matches. */
  logLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
}

/** Runs a TypeScript entry point of this repository through tsx, from the repository root. */
export function spawnTs(file: string, args: string[], env: Record<string, string | undefined>): Spawned {
  return spawnCommand(process.execPath, ["--import", "tsx", file, ...args], { env });
}

/**
 * Runs a command (default: from the repository root) and collects its output.
 * `detached` gives it a process group of its own, as a terminal gives a foreground
 * job: `process.kill(-child.pid, "SIGINT")` then plays a Ctrl-C.
 */
export function spawnCommand(
  command: string,
  args: string[],
  { env = {}, cwd = ROOT, detached = false }: { env?: Record<string, string | undefined>; cwd?: string; detached?: boolean },
): Spawned {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  // An explicit undefined removes a variable (spreading would keep the key).
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete merged[name];
  const child = spawn(command, args, { cwd, env: merged, detached, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  let pending = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    output += chunk;
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const text of lines) {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        continue;
      }
      for (const waiter of waiters.filter((w) => w.match(line))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => output,
    logLine: (match) => new Promise((resolve) => waiters.push({ match, resolve })),
    exit,
  };
}
