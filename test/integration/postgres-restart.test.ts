import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { createClient, createWorker, defineTask, migrate } from "../../src/index.js";
import { startEmbedded, type EmbeddedDatabase } from "../../dev/database.js";
import { collect, next } from "../support/events.js";

// This test owns its server (an embedded PostgreSQL, whatever DATABASE_URL says), so
// it can stop and start it under a running worker.
const dataDir = path.join(tmpdir(), `punctual-restart-${process.pid}`);
let server: EmbeddedDatabase;

beforeAll(async () => {
  server = await startEmbedded({ dataDir, persistent: true });
  await migrate(server.url);
}, 120_000);
afterAll(async () => {
  await server?.stop().catch(() => {});
  await rm(dataDir, { recursive: true, force: true });
});

it("a PostgreSQL restart under a running worker: it reconnects and finishes the work, without a restart of its own", async () => {
  const work = defineTask({ name: "work", payload: z.object({ n: z.number() }), run: () => {} });
  const worker = createWorker({
    connectionString: server.url,
    tasks: [work],
    pollIntervalMs: 100,
    leaseMs: 2000,
    heartbeatIntervalMs: 200,
    rescueIntervalMs: 200,
    logger: pino({ level: "silent" }),
  });
  const errors: Error[] = [];
  worker.on("worker:error", (error) => errors.push(error));
  await worker.start();

  const pool = new pg.Pool({ connectionString: server.url });
  pool.on("error", () => {});
  const punctual = createClient({ executor: pool });
  const before = collect(worker, "job:succeeded", 20);
  await punctual.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ task: work, payload: { n } })));
  await before;

  await server.stop();
  await next(worker, "worker:error"); // it noticed
  // Listen for the reconnect before starting the server: the LISTEN connection may come
  // back before start() has returned (pg_ctl checks for the server every 100 ms).
  const listening = next(worker, "worker:listening", ({ reconnected }) => reconnected);
  await server.start();

  const after = collect(worker, "job:succeeded", 20);
  await punctual.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ task: work, payload: { n: 100 + n } })));
  await after;
  await listening;
  await worker.stop();
  const { rows } = await pool.query("select state, count(*)::int as n from punctual.jobs group by state");
  await pool.end();
  expect(rows).toEqual([{ state: "succeeded", n: 40 }]);
  expect(errors.length).toBeGreaterThan(0);
});
