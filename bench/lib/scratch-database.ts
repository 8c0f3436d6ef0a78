/**
 * A migrated database of its own for a one-off bench script (`lease-race.ts`,
 * `profile-process.ts`): on DATABASE_URL's server, else an embedded PostgreSQL.
 * `drop` removes the database and stops an embedded server.
 */
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { startDevDatabase } from "../../dev/database.js";
import { migrate } from "../../src/index.js";

export interface ScratchDatabase {
  /** The database's name (what `postgresCpu` counts backends by). */
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function scratchDatabase(label: string): Promise<ScratchDatabase> {
  const server = await startDevDatabase({ dataDir: path.join(tmpdir(), `punctual-${label}-${process.pid}`), persistent: false, containers: false });
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  const name = `punctual_${label.replace(/-/g, "_")}_${process.pid}`;
  await admin.query(`create database "${name}"`);
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  await migrate(url.href);
  return {
    name,
    url: url.href,
    async drop() {
      await admin.query(`drop database "${name}" with (force)`);
      await admin.end();
      await server.stop();
    },
  };
}
