/**
 * The shape every maintenance service shares: `runOnce()` does one bounded round and
 * returns counts (tests call it directly); `start`/`stop` run it on an interval.
 */
export interface MaintenanceService<Counts> {
  readonly name: string;
  runOnce(): Promise<Counts>;
}

/**
 * Runs a service every `intervalMs`, with ±10 % jitter so that many workers started
 * together do not all run it in the same instant. Errors go to `onError`; the next
 * round runs as planned.
 */
export class ServiceRunner<Counts> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | null = null;
  private stopped = true;

  constructor(
    private readonly service: MaintenanceService<Counts>,
    private readonly intervalMs: number,
    private readonly onRound: (counts: Counts) => void,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  /** Stops the schedule and waits for a round in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule() {
    if (this.stopped) return;
    const jitter = 0.9 + Math.random() * 0.2;
    this.timer = setTimeout(() => {
      // onRound's own errors (an app's event listener) go to onError too, never
      // to an unhandled rejection.
      this.running = this.service
        .runOnce()
        .then((counts) => this.onRound(counts))
        .catch((error) => {
          try {
            this.onError(error);
          } catch {
            // Reporting failed as well; the next round runs as planned.
          }
        })
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.intervalMs * jitter);
    this.timer.unref();
  }
}
