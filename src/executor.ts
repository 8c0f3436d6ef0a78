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

/**
 * The SQLSTATEs of a named statement that the server connection does not have (26000,
 * "prepared statement ... does not exist") or already has (42P05, "... already
 * exists"). Straight to PostgreSQL neither happens: pg prepares each name once per
 * connection and remembers it. Both are the sign of a pooler in transaction mode
 * that hands each transaction to another server connection and does not carry
 * prepared statements across (PgBouncer before 1.21, or with
 * `max_prepared_statements = 0`), or of a `DISCARD ALL` / `DEALLOCATE` behind pg's back.
 */
const PREPARED_STATEMENT_LOST = new Set(["26000", "42P05"]);

/** What a worker or client logs when it turns prepared statements off (see `PreparedStatements`). */
export const UNPREPARED_WARNING =
  "prepared statements do not work on this connection: the server lost or already had a statement this " +
  "connection prepared, as happens behind PgBouncer in transaction mode before 1.21 or with " +
  "max_prepared_statements = 0. Punctual now sends every statement unprepared, for good, and carries on. " +
  "Set prepare: false (punctual worker --no-prepare) to start that way, or set PgBouncer's " +
  "max_prepared_statements above 0 (PgBouncer 1.21 or later) to keep them";

/**
 * Whether named (prepared) statements are sent: on from the start (unless `prepare:
 * false`), and off for good the first time the server shows it cannot keep them
 * (SQLSTATE 26000 or 42P05). One switch can serve several `Queryable`s (the worker's
 * claim pool and lease-renewal pool), so they fall back together and the warning comes
 * once.
 */
export class PreparedStatements {
  private on: boolean;

  constructor(
    enabled: boolean,
    /** Called once, when the switch turns off, with the error that showed it. */
    private readonly onUnprepared: (error: Error) => void = () => {},
  ) {
    this.on = enabled;
  }

  get enabled(): boolean {
    return this.on;
  }

  /** Turns named statements off for good; says so the first time only. */
  turnOff(error: Error): void {
    if (!this.on) return;
    this.on = false;
    this.onUnprepared(error);
  }
}

/** Whether `error` says the server connection does not hold a statement pg thinks it prepared. */
export function isPreparedStatementLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && PREPARED_STATEMENT_LOST.has(code);
}

/**
 * Adapts any supported executor to `Queryable`. `prepared` turns on named statements:
 * a boolean, or a `PreparedStatements` switch shared with other Queryables.
 *
 * When a named statement fails because the server connection lost or already had it
 * (see `PREPARED_STATEMENT_LOST`), the switch turns off and that statement is sent
 * again, unprepared. That is safe: the error comes from Parse or Bind, before the
 * statement ran. From then on no name is ever sent, so pg's own per-connection record
 * of names it has parsed (which makes it skip Parse, and is exactly what is wrong
 * behind such a pooler) is never consulted again, on any connection of the pool. One
 * exception: on a Client or PoolClient inside a transaction the error has aborted the
 * caller's transaction, and a retry there could only fail; the error is then thrown,
 * with the switch already off, so the caller's retry of the transaction goes through.
 */
export function toQueryable(executor: Executor, { prepared = false }: { prepared?: boolean | PreparedStatements } = {}): Queryable {
  const statements = typeof prepared === "boolean" ? new PreparedStatements(prepared) : prepared;
  if (executor && typeof (executor as pg.Pool).query === "function") {
    const client = executor as pg.Pool;
    return {
      async query(text, values, name) {
        const unnamed = { text, values: values as unknown[] };
        if (!name || !statements.enabled) return (await client.query(unnamed)).rows;
        try {
          return (await client.query({ ...unnamed, name: `punctual_${name}` })).rows;
        } catch (error) {
          if (!isPreparedStatementLost(error)) throw error;
          statements.turnOff(error as Error);
          if (inTransaction(executor)) throw error;
          return (await client.query(unnamed)).rows;
        }
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
 * Whether `executor` is a connection inside a transaction block, which the error has
 * then aborted. pg hands a statement's error over as soon as the ErrorResponse
 * arrives, before the ReadyForQuery that reports the aborted state ('E'), so the status
 * may still say 'T' here: either means the transaction is lost. A pool, or anything
 * that checks a connection out per statement, is never in one.
 */
function inTransaction(executor: Executor): boolean {
  const status = (executor as { getTransactionStatus?: () => string | null }).getTransactionStatus;
  if (typeof status !== "function") return false;
  const now = status.call(executor);
  return now === "T" || now === "E";
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
