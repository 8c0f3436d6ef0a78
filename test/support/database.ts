import { randomUUID } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { databaseUrl } from "./urls.js";

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  /** Ends the pool and drops the database, unless PUNCTUAL_KEEP_TEST_DB is set. */
  drop(): Promise<void>;
}

/**
 * A fresh database for one test file, cloned from the migrated template. Set
 * PUNCTUAL_KEEP_TEST_DB=1 to keep it for inspection after a failure.
 */
export async function createTestDatabase({ migrated = true } = {}): Promise<TestDatabase> {
  const adminUrl = inject("adminUrl");
  const name = `punctual_test_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(
      migrated ? `create database "${name}" template "${inject("templateDatabase")}"` : `create database "${name}"`,
    );
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // Dropping the database terminates connections the pool is still closing.
  pool.on("error", () => {});
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      if (process.env.PUNCTUAL_KEEP_TEST_DB) return;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Every row of punctual.jobs, for "the table is unchanged" assertions. */
export async function snapshotJobs(pool: pg.Pool) {
  const { rows } = await pool.query("select * from punctual.jobs order by id");
  return rows;
}
