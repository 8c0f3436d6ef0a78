/**
 * The single-row enqueue (`client.enqueue`, src/sql/enqueue-one.ts) against
 * `punctual.enqueue_many` (`client.enqueueMany`, one job): on the whole key-semantics
 * matrix the two give the same result, leave the same row and send the same NOTIFY.
 * Each case runs twice from the same starting table, once per path, and the two runs
 * are compared; timestamps the enqueue itself set (now()) are compared as "now".
 */
import pg from "pg";
import { z } from "zod";
import { drizzle } from "drizzle-orm/node-postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createClient,
  defineTask,
  ValidationError,
  type AnyTask,
  type Client,
  type EnqueueOptions,
  type EnqueueResult,
} from "../../src/index.js";
import { ONE_ROW_PAYLOAD_MAX_CHARS } from "../../src/sql/enqueue-one.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { sendEmail } from "../fixtures/tasks.js";

/** A task whose defaults differ from the table's. */
const tuned = defineTask({
  name: "tuned",
  payload: z.object({ to: z.string() }),
  queue: "tuned",
  priority: 2,
  maxAttempts: 9,
  run: () => {},
});
/** Any JSON value at all, null included. */
const anything = defineTask({ name: "anything", payload: z.unknown(), run: () => {} });

let db: TestDatabase;
let punctual: Client;
let listener: pg.Client;
let notifications: Record<string, unknown>[] = [];
let timestampColumns: Set<string>;

/** Every statement the client sent, by prepared-statement name or by text. */
let sent: string[] = [];
/** The pool, wrapped to record what each path sends (a pg Pool to the client: it has `query`). */
let recording: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  recording = {
    query: (config: pg.QueryConfig) => {
      sent.push(config.name ?? config.text);
      return db.pool.query(config);
    },
  } as unknown as pg.Pool;
  punctual = createClient({ executor: recording });
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  listener.on("notification", (m) => notifications.push(JSON.parse(m.payload!)));
  await listener.query("listen punctual_jobs");
  const { rows } = await db.pool.query(
    `select column_name from information_schema.columns
     where table_schema = 'punctual' and table_name = 'jobs' and data_type = 'timestamp with time zone'`,
  );
  timestampColumns = new Set(rows.map((r) => r.column_name as string));
});
afterAll(async () => {
  await listener.end();
  await db.drop();
});
beforeEach(async () => {
  await db.pool.query("delete from punctual.jobs");
});

/** After it, every notification committed before it has arrived. */
const roundTrip = () => listener.query("select 1");

/** A timestamp as PostgreSQL writes it in JSON ("2030-01-01T08:00:00.123456+00:00"), in microseconds. */
function micros(text: string): number {
  const [, head, fraction = "", zone] = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d(?::?\d\d)?)$/.exec(text)!;
  return Date.parse(`${head}${zone}`) * 1000 + Number(fraction.padEnd(6, "0"));
}

/** The window a statement's now() falls in: clock readings just before and after it. */
async function clock(): Promise<number> {
  const { rows } = await db.pool.query("select to_json(clock_timestamp()) #>> '{}' as t");
  return micros(rows[0].t);
}

type Existing = "none" | "pending" | "running" | "succeeded" | "failed" | "cancelled";

/**
 * The job already there, with every column away from its default, so that a replace
 * shows what it resets. (A pending job with cancel_requested_at or a lease does not
 * happen in practice; here it shows that both paths clear or keep the same columns.)
 */
async function setUp(existing: Existing, key: string): Promise<string | null> {
  if (existing === "none") return null;
  const live = existing === "pending" || existing === "running";
  const { rows } = await db.pool.query(
    `insert into punctual.jobs (task, payload, queue, key, state, priority, run_at, max_attempts, attempts,
       last_error, last_error_stack, locked_by, locked_until, cancel_requested_at, started_at, finished_at,
       cron, tz, slot_at, missed, declared, created_at, updated_at)
     values ('send-email', '{"to": "old@example.com", "old": [1, 2]}', 'old-queue', $1, $2, 3,
       '2031-01-01T00:00:00Z', 7, 2, 'boom', 'Error: boom\n    at handler', 'old-worker',
       '2031-01-01T00:05:00Z', $3, '2020-01-01T00:01:00Z', $4,
       '0 8 * * *', 'Europe/Paris', '2031-01-01T07:00:00Z', 'skip', true,
       '2020-01-01T00:00:00Z', '2020-01-01T00:00:30Z')
     returning id`,
    [
      key,
      existing,
      existing === "pending" ? "2020-01-01T00:02:00Z" : null,
      live ? null : "2020-01-01T00:03:00Z",
    ],
  );
  return rows[0].id;
}

interface Observed {
  result: Record<string, unknown>;
  rows: Record<string, unknown>[];
  notifications: Record<string, unknown>[];
  sent: string[];
}

/**
 * Runs one enqueue from the starting table and returns what it did, with the values
 * the enqueue set from now() written "now", and ids as "existing" or "new".
 */
async function observe(existing: Existing, key: string, enqueue: () => Promise<EnqueueResult>): Promise<Observed> {
  await db.pool.query("delete from punctual.jobs");
  const existingId = await setUp(existing, key);
  await roundTrip();
  notifications = [];
  sent = [];
  const before = await clock();
  const result = await enqueue();
  const after = await clock();
  await roundTrip();
  const normal = (column: string, value: unknown): unknown => {
    if (column === "id") return value === null ? null : String(value) === existingId ? "existing" : "new";
    if (typeof value === "string" && (timestampColumns.has(column) || column === "run_at")) {
      const t = micros(value);
      return t >= before && t <= after ? "now" : value;
    }
    return value;
  };
  const { rows } = await db.pool.query("select row_to_json(j) as row from punctual.jobs as j order by j.id");
  const normalRow = (row: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(row).map(([column, value]) => [column, normal(column, value)]));
  // runAt as a Date has milliseconds; compare it with the row's, read the same way.
  const { rows: live } = await db.pool.query("select run_at from punctual.jobs where id = $1", [result.id]);
  expect(result.runAt.getTime()).toBe(live[0].run_at.getTime());
  return {
    result: { ...result, id: normal("id", result.id), runAt: "the row's run_at" },
    rows: rows.map((r) => normalRow(r.row)),
    notifications: notifications.map((n) => normalRow(n)),
    sent,
  };
}

const RUN_AT = { absent: undefined, past: "2020-06-01T12:00:00.000Z", future: "2031-06-01T12:00:00.123+02:00" } as const;
const OPTIONS: Record<string, { task: AnyTask; options: EnqueueOptions }> = {
  "table defaults": { task: sendEmail, options: {} },
  "task defaults": { task: tuned, options: {} },
  "priority, queue and max attempts": { task: sendEmail, options: { priority: -4, queue: "emails", maxAttempts: 3 } },
};
const MODES = [undefined, "replace", "keep"] as const;
const EXISTING: Existing[] = ["none", "pending", "running", "succeeded", "failed", "cancelled"];

interface Case {
  name: string;
  existing: Existing;
  key: string | undefined;
  mode: (typeof MODES)[number];
  runAt: keyof typeof RUN_AT;
  options: string;
}

const cases: Case[] = [];
for (const existing of EXISTING) {
  for (const key of existing === "none" ? [undefined, "new-key"] : ["the-key"]) {
    for (const mode of MODES) {
      for (const runAt of Object.keys(RUN_AT) as (keyof typeof RUN_AT)[]) {
        for (const options of Object.keys(OPTIONS)) {
          const keyed = key === undefined ? "no key" : existing === "none" ? "a new key" : `the key of a ${existing} job`;
          const name = `${keyed}, onConflict ${mode ?? "(default)"}, run_at ${runAt}, ${options}`;
          cases.push({ name, existing, key, mode, runAt, options });
        }
      }
    }
  }
}

/** What the key semantics say, so that the two paths cannot agree on a wrong answer. */
function expectedOutcome(c: Case): EnqueueResult["outcome"] {
  if (c.existing === "pending") return c.mode === "keep" ? "kept" : "replaced";
  if (c.existing === "running") return "kept";
  return "inserted";
}

describe("single-row enqueue and enqueue_many agree", () => {
  it.each(cases)("$name", async (c) => {
    const { task, options } = OPTIONS[c.options]!;
    const payload = { to: "new@example.com" };
    const jobOptions: EnqueueOptions = { ...options, key: c.key, runAt: RUN_AT[c.runAt] };
    if (jobOptions.key === undefined) delete jobOptions.key;
    if (jobOptions.runAt === undefined) delete jobOptions.runAt;

    const one = await observe(c.existing, c.key ?? "", () =>
      punctual.enqueue(task, payload, c.mode ? { ...jobOptions, onConflict: c.mode } : jobOptions),
    );
    const many = await observe(c.existing, c.key ?? "", async () => {
      const [result] = await punctual.enqueueMany([{ task, payload, ...jobOptions }], c.mode ? { onConflict: c.mode } : {});
      return result!;
    });

    expect(one.sent).toEqual(["punctual_enqueue_one"]);
    // A batch without keys is a plain INSERT (nothing to replace or keep); with one, enqueue_many.
    expect(many.sent).toEqual([c.key === undefined ? "punctual_enqueue_unkeyed" : expect.stringContaining("punctual.enqueue_many_unchecked(")]);
    expect(one.result).toEqual(many.result);
    expect(one.rows).toEqual(many.rows);
    expect(one.notifications).toEqual(many.notifications);

    expect(one.result.outcome).toBe(expectedOutcome(c));
    const job = one.rows.find((r) => r.id === one.result.id)!;
    if (one.result.outcome === "kept") {
      expect(one.notifications).toEqual([]);
    } else {
      // A job made pending wakes the workers of its queue, with its due time.
      expect(one.notifications).toEqual([{ run_at: job.run_at, queue: job.queue }]);
      expect(job).toMatchObject({ state: "pending", attempts: 0, payload, last_error: null, cron: null, declared: false });
      if (c.runAt === "absent") expect(job.run_at).toBe("now");
    }
  });
});

describe("single-row enqueue: payloads", () => {
  const payloads: [string, unknown][] = [
    ["an empty object", {}],
    ["nested values, unicode and escapes", { a: [1, { b: null }], s: "héllo \u2028 \"quoted\" \\ \n 😀", t: true }],
    ["numbers jsonb prints in full", { big: 1e300, tiny: 5e-324, neg: -0.5, int: 9007199254740991 }],
    ["a string", "just a string"],
    ["an array", [1, "two", [3]]],
    // enqueue_many stores a JSON null payload as {} (jsonb_to_record reads it as SQL NULL,
    // then coalesce): the single row path does the same, so the two stay interchangeable.
    ["null", null],
    [`a payload just over ${ONE_ROW_PAYLOAD_MAX_CHARS} characters (takes enqueue_many)`, { s: "x".repeat(ONE_ROW_PAYLOAD_MAX_CHARS) }],
  ];
  it.each(payloads)("%s: same row either way", async (what, payload) => {
    const one = await observe("none", "", () => punctual.enqueue(anything, payload));
    const many = await observe("none", "", async () => (await punctual.enqueueMany([{ task: anything, payload }]))[0]!);
    expect(one.rows).toEqual(many.rows);
    expect(one.result).toEqual(many.result);
    expect(one.notifications).toEqual(many.notifications);
    const large = what.startsWith("a payload just over");
    expect(one.sent).toEqual([large ? expect.stringContaining("punctual.enqueue_many(") : "punctual_enqueue_one"]);
  });
});

describe("single-row enqueue: a kept job committed after the statement began", () => {
  /**
   * Another transaction holds an uncommitted job with the key; the enqueue waits on it
   * (the unique index), and sees it committed only after its own snapshot was taken:
   * ON CONFLICT keeps it, but the statement cannot read it. Both paths read it again.
   */
  it.each([
    ["enqueue", (key: string) => punctual.enqueue(sendEmail, { to: "late@example.com" }, { key, onConflict: "keep" })],
    ["enqueueMany", async (key: string) => (await punctual.enqueueMany([{ task: sendEmail, payload: { to: "late@example.com" }, key }], { onConflict: "keep" }))[0]!],
  ] as const)("%s returns the other transaction's job, kept", async (_, enqueue) => {
    const other = await db.pool.connect();
    try {
      await other.query("begin");
      const { rows } = await other.query(
        `insert into punctual.jobs (task, payload, key) values ('send-email', '{"to": "first@example.com"}', 'late') returning id`,
      );
      const waiting = enqueue("late");
      // Wait (by asking PostgreSQL, not the clock) until the enqueue is blocked on the row.
      for (;;) {
        const { rows: blocked } = await db.pool.query(
          `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%punctual%'`,
        );
        if (blocked.length) break;
      }
      await other.query("commit");
      expect(await waiting).toMatchObject({ id: Number(rows[0].id), key: "late", state: "pending", outcome: "kept" });
    } finally {
      other.release();
    }
    const { rows: all } = await db.pool.query("select payload from punctual.jobs");
    expect(all).toEqual([{ payload: { to: "first@example.com" } }]);
  });
});

describe("single-row enqueue: executors", () => {
  it("in the caller's transaction on a pg client: prepared there, invisible until commit, gone on rollback", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      const first = await punctual.enqueue(sendEmail, { to: "a@example.com" }, { executor: client, key: "tx" });
      expect(first.outcome).toBe("inserted");
      expect((await db.pool.query("select count(*)::int as n from punctual.jobs")).rows[0].n).toBe(0);
      await client.query("rollback");
      // The statement was prepared inside the rolled-back transaction; it outlives it.
      const { rows: statements } = await client.query("select name from pg_prepared_statements");
      expect(statements.map((r) => r.name)).toContain("punctual_enqueue_one");
      await client.query("begin");
      const again = await punctual.enqueue(sendEmail, { to: "b@example.com" }, { executor: client, key: "tx" });
      const replaced = await punctual.enqueue(sendEmail, { to: "c@example.com" }, { executor: client, key: "tx" });
      expect(again.outcome).toBe("inserted");
      expect(replaced).toMatchObject({ id: again.id, outcome: "replaced" });
      await client.query("commit");
    } finally {
      client.release();
    }
    expect((await punctual.get("tx"))?.payload).toEqual({ to: "c@example.com" });
  });

  it("through a drizzle transaction (unnamed): the same outcomes", async () => {
    const orm = drizzle({ client: db.pool });
    await orm.transaction(async (tx) => {
      const inserted = await punctual.enqueue(sendEmail, { to: "a@example.com" }, { executor: tx, key: "orm" });
      const replaced = await punctual.enqueue(sendEmail, { to: "b@example.com" }, { executor: tx, key: "orm" });
      const kept = await punctual.enqueue(sendEmail, { to: "c@example.com" }, { executor: tx, key: "orm", onConflict: "keep" });
      expect([inserted.outcome, replaced.outcome, kept.outcome]).toEqual(["inserted", "replaced", "kept"]);
      expect(new Set([inserted.id, replaced.id, kept.id]).size).toBe(1);
    });
    expect((await punctual.get("orm"))?.payload).toEqual({ to: "b@example.com" });
  });

  it("prepare: false sends it unnamed, leaving no prepared statement (PgBouncer < 1.21)", async () => {
    const statements = async (prepare: boolean) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      try {
        const client = createClient({ executor: pool, prepare });
        await client.enqueue(sendEmail, { to: "a@example.com" });
        const { rows } = await pool.query("select name from pg_prepared_statements");
        return rows.map((r) => r.name as string);
      } finally {
        await pool.end();
      }
    };
    expect(await statements(true)).toEqual(["punctual_enqueue_one"]);
    expect(await statements(false)).toEqual([]);
    expect(() => createClient({ executor: db.pool, prepare: "yes" as never })).toThrow(ValidationError);
  });
});

describe("the live-key index (drizzle/0011)", () => {
  it("holds keyed live rows only: the ON CONFLICT clause of clients before 0011 fails with 42P10 and writes nothing (README, Upgrading)", async () => {
    await db.pool.query("truncate punctual.jobs");
    await punctual.enqueue(sendEmail, { to: "a@example.com" });
    await punctual.enqueue(sendEmail, { to: "b@example.com" }, { key: "k" });
    const { rows: index } = await db.pool.query("select indexdef from pg_indexes where indexname = 'jobs_live_key_idx'");
    expect(index[0].indexdef).toMatch(/WHERE \(\(key IS NOT NULL\) AND \(state = ANY/);
    const old = db.pool.query(
      `insert into punctual.jobs (task, key) values ('send-email', 'k2')
       on conflict (key) where state in ('pending', 'running') do nothing`,
    );
    await expect(old).rejects.toMatchObject({ code: "42P10" });
    const { rows } = await db.pool.query("select count(*)::int as n from punctual.jobs");
    expect(rows[0].n).toBe(2);
  });
});
