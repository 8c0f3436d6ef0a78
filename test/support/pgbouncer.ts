/**
 * A PgBouncer in transaction mode in front of the test server, for tests of Punctual
 * behind a pooler: a private one started here (the machine's `pgbouncer`), or the
 * user's own when `PUNCTUAL_TEST_PGBOUNCER_URL` names one.
 *
 * The private one is the hard case on purpose: PgBouncer as packaged (Debian 12: 1.18,
 * which cannot carry prepared statements; a 1.21+ gets `max_prepared_statements = 0`,
 * the default of 1.21 to 1.23), and `server_round_robin = 1`, so consecutive transactions
 * of one client land on different server connections whenever there are several. A
 * client that relies on a statement it prepared on "its" connection then fails for
 * certain, not by chance.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "../../dev/database.js";
import { databaseUrl } from "./urls.js";

const run = promisify(execFile);

export interface PgBouncer {
  /** Where it came from: started by this module, or the user's `PUNCTUAL_TEST_PGBOUNCER_URL`. */
  source: "private" | "PUNCTUAL_TEST_PGBOUNCER_URL";
  /** PgBouncer's version, when known ("1.18.0"). */
  version: string | null;
  /**
   * Whether a statement prepared by one transaction is there for the next: false for
   * the private one; for the user's own, what `PUNCTUAL_TEST_PGBOUNCER_PREPARED` says
   * (1 or 0), else unknown.
   */
  keepsPreparedStatements: boolean | undefined;
  /** A URL through PgBouncer to `database` on the test server. */
  url(database: string): string;
  /** Stops the private PgBouncer and deletes its folder; the user's own is left alone. */
  stop(): Promise<void>;
}

/**
 * A PgBouncer in front of the server `serverUrl` points at (a superuser URL, as the
 * tests' `adminUrl`). A user's own (`PUNCTUAL_TEST_PGBOUNCER_URL`) must be in
 * transaction mode in front of that same server, with a wildcard database entry
 * (`* = host=... port=...`), since every test file makes a database of its own.
 */
export async function startPgBouncer(serverUrl: string): Promise<PgBouncer> {
  const own = process.env.PUNCTUAL_TEST_PGBOUNCER_URL;
  if (own) {
    const prepared = process.env.PUNCTUAL_TEST_PGBOUNCER_PREPARED;
    return {
      source: "PUNCTUAL_TEST_PGBOUNCER_URL",
      version: null,
      keepsPreparedStatements: prepared === undefined ? undefined : prepared === "1",
      url: (database) => databaseUrl(own, database),
      stop: async () => {},
    };
  }
  const binary = findBinary();
  const { stdout } = await run(binary, ["--version"]);
  const version = /PgBouncer (\d+\.\d+(?:\.\d+)?)/.exec(stdout)?.[1] ?? null;
  // A port found free may be taken before PgBouncer binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startPrivate(binary, version, serverUrl);
    } catch (error) {
      if (attempt === 3 || !(error instanceof PortTakenError)) throw error;
    }
  }
}

class PortTakenError extends Error {}

function findBinary(): string {
  const candidates = [process.env.PGBOUNCER, ...(process.env.PATH ?? "").split(":").map((dir) => path.join(dir, "pgbouncer")), "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];
  const found = candidates.find((candidate) => candidate && existsSync(candidate));
  if (!found) {
    throw new Error(
      "pgbouncer is not installed: install it (apt-get install pgbouncer), set PGBOUNCER to its path, " +
        "or set PUNCTUAL_TEST_PGBOUNCER_URL to a PgBouncer of your own (see the README's PgBouncer section)",
    );
  }
  return found;
}

async function startPrivate(binary: string, version: string | null, serverUrl: string): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || "postgres");
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const dir = await mkdtemp("/tmp/punctual-pgbouncer-");
  const files = {
    config: path.join(dir, "pgbouncer.ini"),
    users: path.join(dir, "users.txt"),
    log: path.join(dir, "pgbouncer.log"),
    pid: path.join(dir, "pgbouncer.pid"),
  };
  const [major = 0, minor = 0] = (version ?? "0.0").split(".").map(Number);
  const hasPreparedStatements = major > 1 || (major === 1 && minor >= 21);
  const quote = (value: string) => `"${value.replaceAll('"', '""')}"`;
  // Clients are trusted (it listens on loopback only, for one test file); PgBouncer logs
  // in to the server with the password from the users file (plain text: it may need
  // SCRAM, as the embedded server does).
  await writeFile(files.users, `${quote(user)} ${quote(password)}\n`, { mode: 0o600 });
  await writeFile(
    files.config,
    [
      "[databases]",
      `* = host=${server.hostname.replace(/^\[|\]$/g, "")} port=${server.port || 5432}`,
      "",
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${files.users}`,
      `admin_users = ${user}`,
      "pool_mode = transaction",
      "default_pool_size = 20",
      "max_client_conn = 500",
      "server_round_robin = 1",
      `logfile = ${files.log}`,
      `pidfile = ${files.pid}`,
      "log_connections = 0",
      "log_disconnections = 0",
      // 1.21 and later: the default of 1.21 to 1.23, under which prepared statements break.
      ...(hasPreparedStatements ? ["max_prepared_statements = 0"] : []),
      "",
    ].join("\n"),
  );
  // PgBouncer refuses to run as root: then it runs as the postgres OS user, which must
  // own its folder (mkdtemp makes it 0700) and files.
  const osUser = await runAsUser();
  if (osUser) {
    for (const file of [dir, ...Object.values(files).filter((f) => f !== files.log && f !== files.pid)]) {
      await chown(file, osUser.uid, osUser.gid);
    }
    await chmod(dir, 0o700);
  }
  const child = spawn(binary, [files.config], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(osUser ? { uid: osUser.uid, gid: osUser.gid } : {}),
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // Should the test process die without stopping it, it does not outlive it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const stop = async () => {
    process.off("exit", killOnExit);
    await stopProcess(child, exited);
    await rm(dir, { recursive: true, force: true });
  };
  const url = (database: string) => {
    const through = new URL(databaseUrl(serverUrl, database));
    through.hostname = "127.0.0.1";
    through.port = String(port);
    through.password = "";
    return through.toString();
  };
  try {
    await waitUntilServing(url(server.pathname.slice(1) || "postgres"), exited);
  } catch (error) {
    const log = await readFile(files.log, "utf8").catch(() => "");
    await stop();
    if (/Address already in use/i.test(output + log)) throw new PortTakenError(`port ${port} was taken`);
    throw new Error(`pgbouncer did not start: ${(error as Error).message}\n${output}${log}`);
  }
  return { source: "private", version, keepsPreparedStatements: false, url, stop };
}

/** The OS user PgBouncer runs as when the tests run as root (it refuses root). */
async function runAsUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error("running as root, pgbouncer needs the postgres OS user (it refuses root), and there is none");
  }
}

/** Resolves once a statement goes through PgBouncer to the server; rejects if it exits first or takes 15 s. */
async function waitUntilServing(url: string, exited: Promise<number | null>): Promise<void> {
  let gone: number | null | undefined;
  void exited.then((code) => (gone = code));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (gone !== undefined) throw new Error(`it exited with code ${gone}`);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("select 1");
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await client.end().catch(() => {});
    }
  }
}

/** SIGTERM (immediate shutdown before 1.23; after the clients left from 1.23), then SIGKILL after 5 s. */
async function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), 5000)));
  if ((await Promise.race([exited, late])) === "late") {
    child.kill("SIGKILL");
    await exited;
  }
  clearTimeout(timer);
}

/**
 * Makes PgBouncer open `count` server connections behind `url` (as many transactions
 * held open at once), which it keeps for later clients. Statements then rotate over
 * more server connections than a client has prepared a statement on, so a client
 * relying on prepared statements meets one without it on its next rounds, rather than
 * each of its connections happening to find one that has it.
 */
export async function openServerConnections(url: string, count: number): Promise<void> {
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const client = new pg.Client({ connectionString: url });
      clients.push(client);
      await client.connect();
      // In a transaction, each holds a server connection of its own until commit.
      await client.query("begin");
      await client.query("select 1");
    }
  } finally {
    await Promise.all(clients.map((client) => client.query("commit").catch(() => {}).then(() => client.end())));
  }
}
