import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../src/index.js";
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
  functions: ["check_input", "enqueue", "enqueue_many", "input_check", "notify_cancel_row", "notify_pending", "notify_pending_row", "schedule", "schedule_many"],
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

  it("keeps its bookkeeping in punctual.migrations, apart from the app's drizzle migrations", async () => {
    db = await createTestDatabase({ migrated: false });
    await migrate(db.url);
    const { rows } = await db.pool.query("select to_regclass('drizzle.__drizzle_migrations') as app");
    expect(rows[0].app).toBeNull();
  });
});
