import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate as drizzleMigrate } from "drizzle-orm/node-postgres/migrator";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../src/index.js";
import { MIGRATIONS_FOLDER } from "../../src/migrate.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { exited, forkFixture } from "../support/processes.js";

let db: TestDatabase | undefined;
afterEach(async () => {
  await db?.drop();
  db = undefined;
});

const journal = JSON.parse(readFileSync(new URL("../../drizzle/meta/_journal.json", import.meta.url), "utf8"));
const EXPECTED = {
  migrations: journal.entries.length,
  tables: ["jobs", "migrations"],
  functions: ["check_input", "enqueue", "enqueue_many", "enqueue_many_unchecked", "held_jobs", "input_check", "notify_cancel_row", "notify_pending", "notify_pending_row", "schedule", "schedule_many"],
};

async function schemaState(database: TestDatabase) {
  const { rows } = await database.pool.query(`
    select (select count(*) from punctual.migrations)::int as migrations,
           (select array_agg(tablename::text order by tablename) from pg_tables where schemaname = 'punctual') as tables,
           (select array_agg(proname::text order by proname) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'punctual') as functions`);
  return rows[0];
}

describe("migrate", () => {
  it("creates the schema on an empty database and is a no-op the second time", async () => {
    db = await createTestDatabase({ migrated: false });
    await migrate(db.url);
    const first = await schemaState(db);
    expect(first).toEqual(EXPECTED);
    await migrate(db.pool);
    expect(await schemaState(db)).toEqual(first);
  });

  it("two processes migrating one database at once both succeed", async () => {
    db = await createTestDatabase({ migrated: false });
    const children = [0, 1].map(() => forkFixture("migrate-process.ts", { DATABASE_URL: db!.url }));
    expect(await Promise.all(children.map(exited))).toEqual([0, 0]);
    expect(await schemaState(db)).toEqual(EXPECTED);
  });

  it("a database migrated by an earlier release gets every later migration", async () => {
    // drizzle applies only migrations stamped later than the last one applied: the
    // journal's stamps must rise, or an upgraded database silently misses some.
    const stamps = journal.entries.map((e: { when: number }) => e.when);
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
    expect(new Set(stamps).size).toBe(stamps.length);
    // A database as the release before the last two migrations left it, then upgraded.
    db = await createTestDatabase({ migrated: false });
    const earlier = mkdtempSync(path.join(tmpdir(), "punctual-migrations-"));
    try {
      cpSync(MIGRATIONS_FOLDER, earlier, { recursive: true });
      const kept = { ...journal, entries: journal.entries.slice(0, -2) };
      writeFileSync(path.join(earlier, "meta", "_journal.json"), JSON.stringify(kept));
      const client = await db.pool.connect();
      try {
        await drizzleMigrate(drizzle({ client }), { migrationsFolder: earlier, migrationsSchema: "punctual", migrationsTable: "migrations" });
      } finally {
        client.release();
      }
    } finally {
      rmSync(earlier, { recursive: true, force: true });
    }
    expect((await schemaState(db)).migrations).toBe(EXPECTED.migrations - 2);
    await migrate(db.url);
    expect(await schemaState(db)).toEqual(EXPECTED);
  });

  it("keeps its bookkeeping in punctual.migrations, apart from the app's drizzle migrations", async () => {
    db = await createTestDatabase({ migrated: false });
    await migrate(db.url);
    const { rows } = await db.pool.query("select to_regclass('drizzle.__drizzle_migrations') as app");
    expect(rows[0].app).toBeNull();
  });
});
