import pg from "pg";

/** One intercepted query: seen, held until released, then run for real. */
export interface Gate {
  /** Resolves when a matching query arrives (the caller is then waiting on the gate). */
  reached: Promise<void>;
  /** How many matching queries arrived so far. */
  readonly count: number;
  /** Lets every held and future matching query through. */
  open(): void;
  /** Resolves when the first matching query, let through, has finished (rows or error). */
  finished: Promise<void>;
  /** Resolves once `n` matching queries have arrived. */
  arrivals(n: number): Promise<void>;
}

/**
 * A real pg Pool on a real database whose queries a test can hold at a gate, to force
 * an interleaving (a lease renewal in flight while a job completes, an outcome write
 * that never comes back) with events instead of sleeps.
 */
export class GatedPool extends pg.Pool {
  private gates: { match: (text: string, name: string | undefined) => boolean; hold: (run: () => Promise<unknown>) => Promise<unknown> }[] = [];

  /** Holds every query whose text or prepared-statement name matches, from now on. */
  gate(match: (text: string, name: string | undefined) => boolean): Gate {
    let opened = false;
    let count = 0;
    let reach!: () => void;
    let finish!: () => void;
    const waiting: (() => void)[] = [];
    const counters: { n: number; resolve: () => void }[] = [];
    const gate: Gate = {
      reached: new Promise((resolve) => (reach = resolve)),
      finished: new Promise((resolve) => (finish = resolve)),
      get count() {
        return count;
      },
      open() {
        opened = true;
        for (const go of waiting.splice(0)) go();
      },
      arrivals: (n) => new Promise((resolve) => (count >= n ? resolve() : counters.push({ n, resolve }))),
    };
    this.gates.push({
      match,
      hold: async (run) => {
        count += 1;
        const first = count === 1;
        reach();
        for (const counter of counters.filter((c) => count >= c.n)) {
          counters.splice(counters.indexOf(counter), 1);
          counter.resolve();
        }
        if (!opened) await new Promise<void>((resolve) => waiting.push(resolve));
        try {
          return await run();
        } finally {
          if (first) finish();
        }
      },
    });
    return gate;
  }

  // Punctual calls query(config) and query(text, values), always with promises.
  override query(...args: unknown[]): never {
    const [config, values] = args as [string | pg.QueryConfig, unknown[] | undefined];
    const text = typeof config === "string" ? config : config.text;
    const name = typeof config === "string" ? undefined : config.name;
    const run = () => (super.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values);
    const gate = this.gates.find((g) => g.match(text, name));
    return (gate ? gate.hold(run) : run()) as never;
  }
}
