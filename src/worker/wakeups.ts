import pg from "pg";
import type { Logger } from "../logger.js";

/** Why the claim loop ran a claim. */
export type WakeReason = "start" | "poll" | "notify" | "timer" | "slot" | "reconnect";

/** How many future due times a worker keeps timers for. */
export const UPCOMING_MAX = 32;

/** The channel `punctual.notify_pending` (drizzle/0003) notifies on. */
export const NOTIFY_CHANNEL = "punctual_jobs";

/**
 * Tells an idle worker when to claim, so jobs start on the millisecond rather than at
 * the next poll:
 * - LISTEN on a connection of its own: a job due now wakes the worker at once; a job
 *   due later arms the timer;
 * - a timer for the earliest known `run_at` (from NOTIFY, or from the worker asking
 *   after each idle claim). Delays use the database's clock, corrected by the offset
 *   measured on each ask, so clock skew between hosts does not make jobs late.
 * The LISTEN connection reconnects on its own after any fault, and wakes the worker
 * when it is back (notifications sent meanwhile were lost). A connection can also die
 * without a word (a silent partition: nothing arrives, nothing fails), so it is pinged
 * every `pingMs`; one that does not answer within `pingMs` is destroyed and replaced. The same channel carries
 * cancel requests for running jobs, so a handler's signal fires at once.
 */
export class Wakeups {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  /**
   * Due times known beyond the armed one (local clock, ascending, at most
   * UPCOMING_MAX): when the timer fires it is armed again for the next, so jobs due
   * close together do not each wait for a look-ahead round trip. Hints only: a job
   * claimed elsewhere meanwhile costs one claim that finds nothing.
   */
  private upcoming: number[] = [];
  private clockOffsetMs = 0;
  /** Wake this long before a due time: the worker claims that far ahead (its `claimLeadMs`). */
  leadMs = 0;
  private stopped = false;
  /** The LISTEN connection is connected and listening (for readiness probes). */
  private listeningNow = false;
  private reconnectDelayMs = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: pg.ClientConfig | undefined,
    private readonly logger: Logger,
    private readonly onWake: (reason: WakeReason) => void,
    private readonly onError: (error: unknown) => void,
    private readonly onListening: (reconnected: boolean) => void = () => {},
    /** A running job's cancel was requested (drizzle/0006): `workerId` holds it. */
    private readonly onCancel: (jobId: number, workerId: string | null) => void = () => {},
    /** The queues the worker serves: notifications for other queues are ignored (drizzle/0007). */
    private readonly queues?: readonly string[],
    /** How often the LISTEN connection is pinged, and how long a ping may take. */
    private readonly pingMs = 5_000,
  ) {}

  /** Whether the LISTEN connection is up now (always false without one). */
  get listening(): boolean {
    return this.listeningNow;
  }

  /** The database's clock minus this process's, as last measured (ms; 0 before the first measure). */
  get dbClockOffsetMs(): number {
    return this.clockOffsetMs;
  }

  /** Starts listening (when given a connection config; without one, timers only). */
  start(): void {
    if (this.connection) void this.connect(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.listeningNow = false;
    clearTimeout(this.timer);
    this.upcoming = [];
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pingTimer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }

  /**
   * Notes when the next job becomes due, as the database sees it (`dbNow` is the
   * database's clock when it answered). Keeps the earliest timer, armed `leadMs` early.
   */
  dueAt(runAt: Date | readonly Date[], dbNow?: Date): void {
    if (dbNow) this.clockOffsetMs = dbNow.getTime() - Date.now();
    for (const at of Array.isArray(runAt) ? runAt : [runAt as Date]) this.arm(at.getTime() - this.clockOffsetMs - this.leadMs);
  }

  private arm(localMs: number) {
    if (this.stopped || localMs === this.timerAt) return;
    if (localMs > this.timerAt) {
      this.remember(localMs);
      return;
    }
    if (this.timerAt !== Number.POSITIVE_INFINITY) this.remember(this.timerAt);
    clearTimeout(this.timer);
    this.timerAt = localMs;
    this.timer = setTimeout(() => {
      this.timerAt = Number.POSITIVE_INFINITY;
      // Re-arm for the next known due time (past ones are covered by this wake-up).
      const now = Date.now();
      while (this.upcoming.length > 0 && this.upcoming[0]! <= now) this.upcoming.shift();
      const next = this.upcoming.shift();
      if (next !== undefined) this.arm(next);
      this.onWake("timer");
    }, Math.max(0, localMs - Date.now()));
  }

  private remember(localMs: number) {
    let i = this.upcoming.length;
    while (i > 0 && this.upcoming[i - 1]! > localMs) i--;
    if (this.upcoming[i - 1] === localMs) return;
    this.upcoming.splice(i, 0, localMs);
    if (this.upcoming.length > UPCOMING_MAX) this.upcoming.pop();
  }

  private async connect(isReconnect: boolean) {
    const client = new pg.Client(this.connection);
    // Every fault ends up here: reconnect after a growing pause.
    const lost = (error?: Error) => {
      if (this.stopped || this.client !== client) return;
      this.client = null;
      this.listeningNow = false;
      clearTimeout(this.pingTimer);
      if (error) this.onError(error);
      this.logger.warn({ retryInMs: this.reconnectDelayMs }, "LISTEN connection lost; reconnecting");
      this.reconnectTimer = setTimeout(() => void this.connect(true), this.reconnectDelayMs);
      this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
      client.end().catch(() => {});
    };
    client.on("error", lost);
    client.on("end", () => lost());
    client.on("notification", (message) => this.onNotification(message.payload));
    this.client = client;
    try {
      await client.connect();
      await this.answered(client, `listen ${NOTIFY_CHANNEL}`);
      this.reconnectDelayMs = 100;
      this.ping(client);
      this.listeningNow = this.client === client;
      this.onListening(isReconnect);
      if (isReconnect) {
        this.logger.info("LISTEN connection restored");
        this.onWake("reconnect");
      }
    } catch (error) {
      lost(error as Error);
    }
  }

  /** Pings `client` every `pingMs` while it is the LISTEN connection. */
  private ping(client: pg.Client) {
    this.pingTimer = setTimeout(() => {
      if (this.client !== client) return;
      this.answered(client, "select 1").then(
        () => this.client === client && this.ping(client),
        // The connection's own error and end events reconnect.
        () => {},
      );
    }, this.pingMs);
  }

  /**
   * Runs `sql` on `client`; if no answer comes within `pingMs`, destroys the
   * connection (its end event then reconnects).
   */
  private async answered(client: pg.Client, sql: string): Promise<void> {
    const deadline = setTimeout(() => {
      if (this.client !== client) return;
      this.logger.warn({ boundMs: this.pingMs }, "the LISTEN connection did not answer in time; replacing it");
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    }, this.pingMs);
    try {
      await client.query(sql);
    } finally {
      clearTimeout(deadline);
    }
  }

  private onNotification(payload: string | undefined) {
    let message: { run_at?: string; queue?: string; cancel?: number; locked_by?: string | null };
    try {
      message = JSON.parse(payload ?? "{}");
    } catch {
      return;
    }
    if (typeof message.cancel === "number") {
      this.onCancel(message.cancel, message.locked_by ?? null);
      return;
    }
    // A job in a queue this worker does not serve is not ours to claim.
    if (typeof message.queue === "string" && this.queues && !this.queues.includes(message.queue)) return;
    const runAt = Date.parse(message.run_at ?? "");
    if (Number.isNaN(runAt)) return;
    const localMs = runAt - this.clockOffsetMs - this.leadMs;
    if (localMs <= Date.now()) this.onWake("notify");
    else this.arm(localMs);
  }
}
