import pg from "pg";
import { Param, sql, type SQL } from "drizzle-orm";
import { ValidationError } from "./errors.js";

/** Anything that can run a drizzle `sql` object: a drizzle database or transaction. */
export interface DrizzleExecutor {
  execute(query: SQL): Promise<unknown>;
}

/**
 * Where a statement runs: a `pg` Pool, PoolClient or Client, or a drizzle
 * (node-postgres) database or transaction. Pass the caller's transaction to make a
 * Punctual write part of it: invisible until commit, gone on rollback. Punctual
 * never issues BEGIN or COMMIT on an executor it was given.
 */
export type Executor = pg.Pool | pg.PoolClient | pg.Client | DrizzleExecutor;

/** The one query interface the rest of the library uses. */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
    /**
     * Names a statement the worker runs over and over: on a pg executor made with
     * `prepared: true` it is prepared once per connection, so PostgreSQL stops
     * parsing and planning it each time.
     */
    name?: string,
  ): Promise<R[]>;
}

/**
 * Whether `executor` is a pg Pool, told by shape rather than `instanceof`: an app may
 * resolve a copy of `pg` other than Punctual's, whose Pool is another class. A pool
 * hands out connections (`connect`) and counts them (`totalCount`); a Client or
 * PoolClient does not count.
 */
export function isPgPool(executor: unknown): executor is pg.Pool {
  const candidate = executor as Partial<pg.Pool> | null | undefined;
  return (
    typeof candidate?.connect === "function" &&
    typeof candidate.query === "function" &&
    typeof candidate.totalCount === "number"
  );
}

/** Adapts any supported executor to `Queryable`; `prepared` turns on named statements. */
export function toQueryable(executor: Executor, { prepared = false } = {}): Queryable {
  if (executor && typeof (executor as pg.Pool).query === "function") {
    const client = executor as pg.Pool;
    return {
      async query(text, values, name) {
        const result = await client.query(
          prepared && name ? { name: `punctual_${name}`, text, values: values as unknown[] } : { text, values: values as unknown[] },
        );
        return result.rows;
      },
    };
  }
  if (executor && typeof (executor as DrizzleExecutor).execute === "function") {
    const db = executor as DrizzleExecutor;
    return {
      async query(text, values = []) {
        const result = await db.execute(toDrizzleSql(text, values));
        // node-postgres drizzle returns a pg QueryResult; array-returning drivers return rows.
        return (Array.isArray(result) ? result : (result as pg.QueryResult).rows) as never;
      },
    };
  }
  throw new ValidationError("executor", "must be a pg Pool, PoolClient or Client, or a drizzle database or transaction");
}

/**
 * Turns `$1`-style SQL into a drizzle `sql` object. Each value becomes one `Param`, so
 * arrays stay single array parameters (a bare array in drizzle's template would be
 * spread into a list).
 */
function toDrizzleSql(text: string, values: readonly unknown[]): SQL {
  const parts = text.split(/\$(\d+)/);
  const chunks: SQL[] = [];
  parts.forEach((part, i) => {
    if (i % 2 === 0) chunks.push(sql.raw(part));
    else chunks.push(sql`${new Param(values[Number(part) - 1])}`);
  });
  return sql.join(chunks);
}

/**
 * Runs `work` in a transaction of its own. Only for executors that can open one without
 * touching a caller's transaction: a pg Pool (a fresh connection) or a drizzle
 * database (its `transaction`; inside a drizzle transaction, a savepoint).
 */
export async function withTransaction<T>(executor: Executor | undefined, work: (db: Queryable) => Promise<T>): Promise<T> {
  if (isPgPool(executor)) {
    const client = await executor.connect();
    try {
      await client.query("begin");
      const result = await work(toQueryable(client));
      await client.query("commit");
      return result;
    } catch (error) {
      await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }
  const drizzleDb = executor as { transaction?: (fn: (tx: DrizzleExecutor) => Promise<T>) => Promise<T> } | undefined;
  if (drizzleDb && typeof drizzleDb.transaction === "function" && typeof (executor as DrizzleExecutor).execute === "function") {
    return drizzleDb.transaction((tx) => work(toQueryable(tx)));
  }
  throw new ValidationError("executor", "this call runs its own transaction: give a pg Pool or a drizzle database");
}
