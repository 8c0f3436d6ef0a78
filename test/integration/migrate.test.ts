import { afterEach, describe, expect, it } from "vitest";
import { migrate } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { exited, forkFixture } from "../support/processes.js";

let db: TestDatabase | undefined;
afterEach(async () => {
  await db?.drop();
  db = undefined;
});

async function schemaState(database: TestDatabase) {
  const { rows } = await database.pool.query(`
    select (select count(*) from punctual.migrations)::int as migrations,
           (select count(*) from pg_tables where schemaname = 'punctual')::int as tables,
           (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'punctual')::int as functions`);
  return rows[0];
}

describe("migrate", () => {
  it("creates the schema on an empty database and is a no-op the second time", async () => {
    db = await createTestDatabase({ migrated: false });
    await migrate(db.url);
    const first = await schemaState(db);
    expect(first).toEqual({ migrations: 2, tables: 2, functions: 2 }); // jobs + migrations table
    await migrate(db.pool);
    expect(await schemaState(db)).toEqual(first);
  });

  it("two processes migrating one database at once both succeed", async () => {
    db = await createTestDatabase({ migrated: false });
    const children = [0, 1].map(() => forkFixture("migrate-process.ts", { DATABASE_URL: db!.url }));
    expect(await Promise.all(children.map(exited))).toEqual([0, 0]);
    expect(await schemaState(db)).toEqual({ migrations: 2, tables: 2, functions: 2 });
  });

  it("keeps its bookkeeping in punctual.migrations, apart from the app's drizzle migrations", async () => {
    db = await createTestDatabase({ migrated: false });
    await migrate(db.url);
    const { rows } = await db.pool.query("select to_regclass('drizzle.__drizzle_migrations') as app");
    expect(rows[0].app).toBeNull();
  });
});
