import type pg from "pg";

/**
 * The settings Punctual puts on every connection it opens itself (the worker's pool
 * and LISTEN connection, the client's pool, `migrate`, the CLI), so that a connection
 * lost without a word — a silent partition drops packets and sends no RST — is
 * noticed in seconds rather than after TCP gives up retransmitting (minutes):
 * - TCP keepalive from 5 s of idleness, so an idle connection (LISTEN, an idle pool
 *   connection) that died is found out and closed;
 * - a connect timeout, so a connection attempt into a partition fails and is retried
 *   instead of waiting on SYN retransmissions (over two minutes on Linux).
 * Statements have their own bounds: the worker's watchdog (`statementBoundMs`) and
 * the client's query timeout (`CLIENT_QUERY_TIMEOUT_MS`).
 */
export const KEEPALIVE_IDLE_MS = 5_000;
export const CONNECT_TIMEOUT_MS = 5_000;

/**
 * How long the client's own pool lets a statement go unanswered before it gives the
 * connection up (pg's `query_timeout`). Long enough for a large `enqueueMany`.
 */
export const CLIENT_QUERY_TIMEOUT_MS = 60_000;

/**
 * How long a worker's claim, lease renewal, outcome write or maintenance statement may
 * go unanswered before the watchdog abandons it and destroys its connection: a third
 * of the lease, so a dead socket is given up well before the jobs' leases run out (and
 * a reply that was held up cannot start a job whose lease has lapsed). At least 2 s,
 * so a short lease on a busy database does not tear connections down needlessly.
 */
export function statementBoundMs(leaseMs: number): number {
  return Math.max(2_000, Math.floor(leaseMs / 3));
}

/** `config` with Punctual's connection defaults filling what it does not set. */
export function withConnectionDefaults<T extends pg.ClientConfig>(config: T, connectTimeoutMs = CONNECT_TIMEOUT_MS): T {
  return {
    ...config,
    keepAlive: config.keepAlive ?? true,
    keepAliveInitialDelayMillis: config.keepAliveInitialDelayMillis || KEEPALIVE_IDLE_MS,
    connectionTimeoutMillis: config.connectionTimeoutMillis || connectTimeoutMs,
  };
}

/**
 * What a pool the app passes lacks of the safeguards above: the worker warns about
 * them at start (its own statements are guarded by the watchdog either way; the app's
 * queries on that pool are not).
 */
export function missingSafeguards(config: pg.PoolConfig): string[] {
  const missing: string[] = [];
  if (!config.keepAlive) missing.push("keepAlive");
  if (!config.connectionTimeoutMillis) missing.push("connectionTimeoutMillis");
  if (!config.query_timeout && !config.statement_timeout) missing.push("query_timeout");
  return missing;
}

const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  // PostgreSQL: shutting down, crashed, starting up, too many connections.
  "57P01",
  "57P02",
  "57P03",
  "53300",
]);

/**
 * Whether `error` says the database could not be reached or the connection broke (as
 * opposed to a statement that failed on a working connection).
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (CONNECTION_ERROR_CODES.has(code) || code.startsWith("08"))) return true;
  if (code === STATEMENT_TIMEOUT_CODE) return true;
  return /Connection terminated|timeout exceeded when trying to connect|timeout expired|Query read timeout|Client has encountered a connection error/i.test(
    error.message,
  );
}

/** The `code` of the error a watchdog raises for a statement it abandoned. */
export const STATEMENT_TIMEOUT_CODE = "PUNCTUAL_STATEMENT_TIMEOUT";
