/**
 * An app whose `pg` is not Punctual's copy (another version, or a duplicate in a
 * monorepo): its Pool is another class, so Punctual must recognise a pool by its shape,
 * not with `instanceof`. Otherwise `reconcileSchedules` refuses the pool, and
 * `migrate`'s advisory lock is taken on whatever pooled connection comes first.
 */
import { randomUUID } from "node:crypto";
import { cp, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type pgTypes from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { createClient, createWorker, defineTask, migrate } from "../../src/index.js";
import { isPgPool } from "../../src/executor.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { next } from "../support/events.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const copyDir = path.join(ROOT, "test", `.tmp-second-pg-${randomUUID().slice(0, 8)}`);

let db: TestDatabase;
let secondPg: typeof pgTypes;
let pool: pgTypes.Pool;

beforeAll(async () => {
  db = await createTestDatabase({ migrated: false });
  // Inside the project, so pg's own dependencies still resolve from node_modules.
  await cp(path.join(ROOT, "node_modules", "pg"), path.join(copyDir, "node_modules", "pg"), { recursive: true });
  secondPg = (await import(pathToFileURL(path.join(copyDir, "node_modules", "pg", "esm", "index.mjs")).href)).default;
  pool = new secondPg.Pool({ connectionString: db.url, max: 4 });
});
afterAll(async () => {
  await pool?.end();
  await db.drop();
  await rm(copyDir, { recursive: true, force: true });
});

it("is a second copy of pg indeed", async () => {
  const ours = (await import("pg")).default;
  expect(pool).not.toBeInstanceOf(ours.Pool);
  expect(isPgPool(pool)).toBe(true);
  expect(isPgPool(new secondPg.Client({ connectionString: db.url }))).toBe(false);
});

it("migrate, reconcileSchedules, enqueue and a worker all work with its Pool", async () => {
  await migrate(pool);
  // The migration lock was taken and given back on one connection: none is left held.
  const { rows: locks } = await db.pool.query("select count(*)::int as n from pg_locks where locktype = 'advisory'");
  expect(locks[0].n).toBe(0);

  const ping = defineTask({ name: "ping", payload: z.object({ n: z.number() }), run: () => {} });
  const punctual = createClient({ executor: pool, tasks: [ping] });
  // Runs its own transaction on a connection from the pool: needs to know it is a pool.
  const counts = await punctual.reconcileSchedules([{ key: "ping-hourly", task: ping, payload: { n: 0 }, rule: { every: "1h" } }]);
  expect(counts.inserted).toBe(1);

  const worker = createWorker({ pool, tasks: [ping], logger: pino({ level: "silent" }) });
  await worker.start();
  const done = next(worker, "job:succeeded");
  const { id } = await punctual.enqueue(ping, { n: 1 });
  expect((await done)[0].id).toBe(id);
  await worker.stop();
});
