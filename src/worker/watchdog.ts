import type pg from "pg";
import { isConnectionError, STATEMENT_TIMEOUT_CODE } from "../connection.js";
import { PunctualError } from "../errors.js";

/** A statement the watchdog gave up on: its connection was destroyed. */
export class StatementTimeoutError extends PunctualError {
  override name = "StatementTimeoutError";
  readonly code = STATEMENT_TIMEOUT_CODE;
  constructor(boundMs: number) {
    super(`the database did not answer within ${boundMs} ms; the statement was abandoned and its connection destroyed`);
  }
}

/** The part of a pg Pool the worker's statements use. */
export interface StatementPool {
  query(config: pg.QueryConfig): Promise<pg.QueryResult>;
}

/**
 * Bounds every statement of a worker (claims, lease renewals, outcome writes,
 * maintenance), whatever the pool's own settings: one that has not answered within
 * `boundMs` is abandoned and its connection destroyed — not returned to the pool, where
 * the next statement would queue behind the dead socket. The worker then never waits
 * on a dead connection longer than the bound (a third of the lease). Getting a
 * connection is bounded by the pool's `connectionTimeoutMillis` (the worker's own pool
 * has it; the worker warns at start about a given pool without it).
 *
 * It also tells whether the database is reachable: down from the first connection
 * failure, up again at the first statement that answers.
 */
export class Watchdog {
  private downSince: number | null = null;
  /** When the last statement that answered was sent. */
  private answeredSentAt = 0;

  constructor(
    readonly boundMs: number,
    private readonly events: {
      /** The first connection failure of an outage. */
      down(error: Error): void;
      /** A statement answered again after an outage of `outageMs`. */
      up(outageMs: number): void;
    },
  ) {}

  /** Whether the last statement reached the database (true until one fails). */
  get reachable(): boolean {
    return this.downSince === null;
  }

  /** `pool`, with every statement bounded. */
  guard(pool: pg.Pool): StatementPool {
    resetAbandoned(pool);
    return { query: (config) => this.run(pool, config) };
  }

  /**
   * Notes the fate of a statement sent at `sentAt`: `undefined` when the database
   * answered, else the connection error. Outages begin and end here. A failure of a
   * statement sent before one that has since answered (a connection attempt that began
   * during the outage and timed out after it) is the old outage's, not a new one.
   */
  observe(error: unknown, sentAt: number): void {
    if (error === undefined) {
      this.answeredSentAt = Math.max(this.answeredSentAt, sentAt);
      if (this.downSince !== null) {
        const outageMs = Date.now() - this.downSince;
        this.downSince = null;
        this.events.up(outageMs);
      }
    } else if (this.downSince === null && sentAt >= this.answeredSentAt) {
      this.downSince = Date.now();
      this.events.down(error as Error);
    }
  }

  private async run(pool: pg.Pool, config: pg.QueryConfig): Promise<pg.QueryResult> {
    const sentAt = Date.now();
    try {
      // pg's per-statement read timeout: when it passes, pool.query releases the
      // client with the error, and the pool ends it (a client whose statement is in
      // flight cannot be ended politely), its socket reset (see resetAbandoned).
      const result = await pool.query({ ...config, query_timeout: this.boundMs } as pg.QueryConfig);
      this.observe(undefined, sentAt);
      return result;
    } catch (caught) {
      const error = caught instanceof Error && caught.message === "Query read timeout" ? new StatementTimeoutError(this.boundMs) : caught;
      // An SQL error came from a database that answered.
      this.observe(isConnectionError(error) ? error : undefined, sentAt);
      throw error;
    }
  }
}

const resetting = new WeakSet<pg.Pool>();

/**
 * Makes `pool` drop the connection of a statement that timed out with a TCP RST, just
 * before it ends that client. Closed the usual way, the kernel would go on sending what
 * the socket still held (that statement, stuck in a partition) once the network
 * healed, and the database would run a statement the worker had given up on: a claim
 * of jobs nobody runs until their lease expires. (A TLS socket cannot be reset: it is
 * destroyed as before.)
 */
function resetAbandoned(pool: pg.Pool) {
  if (resetting.has(pool)) return;
  resetting.add(pool);
  pool.on("release", (error: Error | undefined, client: pg.PoolClient) => {
    if (error?.message !== "Query read timeout") return;
    const stream = (client as unknown as { connection?: { stream?: { resetAndDestroy?(): void; destroy(): void } } }).connection?.stream;
    try {
      stream?.resetAndDestroy?.();
    } catch {
      stream?.destroy();
    }
  });
}
