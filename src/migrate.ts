import { fileURLToPath } from "node:url";
import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate as drizzleMigrate } from "drizzle-orm/node-postgres/migrator";
import { withConnectionDefaults } from "./connection.js";
import { isPgPool } from "./executor.js";

/** The SQL migrations drizzle-kit wrote, shipped with the package. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../drizzle", import.meta.url));

/** Arbitrary constant: the advisory lock every migrating process takes. */
const MIGRATION_LOCK = 7_160_414_211_503_312;

/**
 * Creates or upgrades Punctual's schema (`punctual`). Idempotent, and safe when many
 * processes start at once: each takes a session advisory lock, so one migrates and the
 * others find the work done. Applied migrations are tracked in
 * `punctual.migrations`, apart from the app's own drizzle migrations.
 *
 * @example
 * await migrate(process.env.DATABASE_URL!);
 * await migrate(pool); // or a pg Pool / Client the app already has
 */
export async function migrate(database: string | pg.Pool | pg.Client): Promise<void> {
  // The lock is per session, so every statement must go through one connection.
  let client: pg.Client | pg.PoolClient;
  let release: () => Promise<void>;
  if (typeof database === "string") {
    // No statement bound: another process may hold the migration lock for a while.
    const own = new pg.Client(withConnectionDefaults({ connectionString: database }));
    await own.connect();
    client = own;
    release = () => own.end();
  } else if (isPgPool(database)) {
    const pooled = await database.connect();
    client = pooled;
    release = async () => pooled.release();
  } else {
    client = database;
    release = async () => {};
  }
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      await drizzleMigrate(drizzle({ client }), {
        migrationsFolder: MIGRATIONS_FOLDER,
        migrationsSchema: "punctual",
        migrationsTable: "migrations",
      });
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK]);
    }
  } finally {
    await release();
  }
}
