import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, snapshotJobs, type TestDatabase } from "../support/database.js";

// The SQL API refuses bad input itself, before writing anything: SQLSTATE 22023, a
// message "<function>: <parameter> <what is allowed>, got <value>", and the parameter's
// path in the error's column field (jobs[N].<field> for an element of a batch).

let db: TestDatabase;
let before: unknown[];

beforeAll(async () => {
  db = await createTestDatabase();
  // Some existing rows, so that "unchanged" means something.
  await db.pool.query(`select punctual.enqueue('send-email', '{"to": "a@example.com"}', key => 'existing', run_at => now() + interval '1 hour')`);
  await db.pool.query(`select punctual.schedule('existing-schedule', 'tick', every => interval '1 hour')`);
  before = await snapshotJobs(db.pool);
});
afterAll(() => db.drop());

interface PgError {
  code?: string;
  column?: string;
  message: string;
}

async function refusal(sql: string, params: unknown[] = []): Promise<PgError> {
  const error = await db.pool.query(sql, params).then(
    () => null,
    (e: unknown) => e as PgError,
  );
  expect(error, "the statement should fail").not.toBeNull();
  return error!;
}

const ok = `{"task": "noop"}`;
const job = (fields: string) => `{"task": "noop", ${fields}}`;
const many = (...elements: string[]) => `select * from punctual.enqueue_many('[${elements.join(", ")}]')`;
const sched = (fields: string) => `{"key": "s", "task": "tick", ${fields}}`;
const schedMany = (...elements: string[]) => `select * from punctual.schedule_many('[${elements.join(", ")}]')`;

/** [what, statement, parameter path named in the error, message] */
const cases: [string, string, string, RegExp][] = [
  // punctual.enqueue
  ["a null task", `select punctual.enqueue(NULL)`, "task", /^punctual\.enqueue: task must be 1-128 letters, digits or _ \. : -, got null$/],
  ["an empty task", `select punctual.enqueue('')`, "task", /^punctual\.enqueue: task must be .*, got ""$/],
  ["a task with a space", `select punctual.enqueue('send email')`, "task", /^punctual\.enqueue: task must be .*, got "send email"$/],
  ["a task over 128 characters", `select punctual.enqueue(repeat('t', 129))`, "task", /^punctual\.enqueue: task must be 1-128 /],
  ["a priority out of range", `select punctual.enqueue('noop', priority => 99)`, "priority", /^punctual\.enqueue: priority must be an integer from -10 to 10, got 99$/],
  ["a priority below the range", `select punctual.enqueue('noop', priority => -11)`, "priority", /from -10 to 10, got -11$/],
  ["max_attempts of zero", `select punctual.enqueue('noop', max_attempts => 0)`, "max_attempts", /^punctual\.enqueue: max_attempts must be an integer from 1 to 1000, got 0$/],
  ["max_attempts over 1000", `select punctual.enqueue('noop', max_attempts => 1001)`, "max_attempts", /from 1 to 1000, got 1001$/],
  ["a queue with a space", `select punctual.enqueue('noop', queue => 'my queue')`, "queue", /^punctual\.enqueue: queue must be 1-64 letters, digits or _ \. : -, got "my queue"$/],
  ["an empty queue", `select punctual.enqueue('noop', queue => '')`, "queue", /queue must be 1-64 .*, got ""$/],
  ["an empty key", `select punctual.enqueue('noop', key => '')`, "key", /^punctual\.enqueue: key must be a string of 1-255 characters, got ""$/],
  ["a key over 255 characters", `select punctual.enqueue('noop', key => repeat('k', 256))`, "key", /key must be a string of 1-255 characters, got 256 characters$/],
  ["an infinite run_at", `select punctual.enqueue('noop', run_at => 'infinity')`, "run_at", /^punctual\.enqueue: run_at must be a finite timestamp.*, got "infinity"$/],
  ["an unknown on_conflict", `select punctual.enqueue('noop', on_conflict => 'merge')`, "on_conflict", /^punctual\.enqueue: on_conflict must be 'replace' or 'keep', got 'merge'$/],
  ["a null on_conflict", `select punctual.enqueue('noop', on_conflict => NULL)`, "on_conflict", /got NULL$/],
  ["an oversized payload", `select punctual.enqueue('noop', jsonb_build_object('blob', repeat('x', 1100000)))`, "payload", /^punctual\.enqueue: payload is larger than 1 MiB of JSON: 1100012 bytes, the limit is 1048576$/],

  // punctual.enqueue_many
  ["jobs that are not an array", `select * from punctual.enqueue_many('{"task": "noop"}')`, "jobs", /^punctual\.enqueue_many: jobs must be a JSON array, got \{"task": "noop"\}$/],
  ["null jobs", `select * from punctual.enqueue_many(NULL)`, "jobs", /jobs must be a JSON array, got NULL$/],
  ["an element that is not an object", many(ok, "42"), "jobs[1]", /^punctual\.enqueue_many: jobs\[1\] must be a JSON object, got 42$/],
  ["a priority out of range in element 3", many(ok, ok, ok, job(`"priority": 99`)), "jobs[3].priority", /^punctual\.enqueue_many: jobs\[3\]\.priority must be an integer from -10 to 10, got 99$/],
  ["a fractional priority", many(job(`"priority": 1.5`)), "jobs[0].priority", /got 1\.5$/],
  ["a priority given as a string", many(job(`"priority": "high"`)), "jobs[0].priority", /got "high"$/],
  ["max_attempts given as a word", many(job(`"max_attempts": "five"`)), "jobs[0].max_attempts", /from 1 to 1000, got "five"$/],
  ["a missing task", many(ok, `{"payload": {}}`), "jobs[1].task", /^punctual\.enqueue_many: jobs\[1\]\.task must be .*, got null$/],
  ["a task that is an object", many(`{"task": {"name": "noop"}}`), "jobs[0].task", /got \{"name": "noop"\}$/],
  ["a run_at that is not a timestamp", many(ok, job(`"run_at": "tomorrow-ish"`)), "jobs[1].run_at", /^punctual\.enqueue_many: jobs\[1\]\.run_at must be a finite timestamp such as "2030-01-01T08:00:00Z", got "tomorrow-ish"$/],
  ["a run_at on February 31st", many(job(`"run_at": "2030-02-31T08:00:00Z"`)), "jobs[0].run_at", /got "2030-02-31T08:00:00Z"$/],
  ["a run_at that is a number", many(job(`"run_at": 1700000000`)), "jobs[0].run_at", /got 1700000000$/],
  ["a key that is an object", many(job(`"key": {"id": 7}`)), "jobs[0].key", /key must be a string of 1-255 characters, got \{"id": 7\}$/],
  ["one key twice", many(job(`"key": "k"`), ok, job(`"key": "k"`)), "jobs[2].key", /^punctual\.enqueue_many: jobs\[2\]\.key "k" appears twice in one batch \(also jobs\[0\]\)$/],
  ["an unknown field (a typo)", many(job(`"prority": 3`)), "jobs[0]", /^punctual\.enqueue_many: jobs\[0\] has unknown fields \{"prority": 3\}; a job's fields are task, payload, /],
  ["an unknown missed policy", many(job(`"every_ms": 60000, "missed": "later"`)), "jobs[0].missed", /missed must be 'once', 'skip' or 'all', got "later"$/],
  ["an unknown on_conflict for a batch", `select * from punctual.enqueue_many('[${ok}]', 'merge')`, "on_conflict", /^punctual\.enqueue_many: on_conflict must be 'replace' or 'keep', got 'merge'$/],
  ["the first bad element wins (a range error before a parse error)", many(ok, job(`"priority": 99`), job(`"run_at": "nonsense"`)), "jobs[1].priority", /jobs\[1\]\.priority/],
  ["the first bad element wins (a parse error before a range error)", many(ok, job(`"run_at": "nonsense"`), job(`"priority": 99`)), "jobs[1].run_at", /jobs\[1\]\.run_at/],
  ["the first bad element wins (a bad element before a duplicate key)", many(job(`"key": "k"`), job(`"key": "k"`), job(`"queue": ""`)), "jobs[1].key", /appears twice/],
  ["the first bad element wins (a bad element before a duplicate key, reversed)", many(job(`"key": "k"`), job(`"queue": ""`), job(`"key": "k"`)), "jobs[1].queue", /queue/],
  ["a bad timestamp in a large batch is found by element", many(...Array.from({ length: 1000 }, (_, i) =>
    i === 617 ? job(`"run_at": "nonsense"`) : i === 800 ? job(`"priority": 99`) : job(`"key": "k${i}"`))), "jobs[617].run_at", /got "nonsense"$/],
  ["a duplicate key before a bad timestamp", many(...Array.from({ length: 300 }, (_, i) =>
    i === 250 ? job(`"run_at": "nonsense"`) : job(`"key": "k${i % 200}"`))), "jobs[200].key", /"k0" appears twice in one batch \(also jobs\[0\]\)$/],

  // punctual.schedule
  ["a schedule without a key", `select punctual.schedule(NULL, 'tick', every => interval '1 hour')`, "key", /^punctual\.schedule: key must be a string of 1-255 characters, got null$/],
  ["a schedule with an empty key", `select punctual.schedule('', 'tick', every => interval '1 hour')`, "key", /got ""$/],
  ["a schedule without a task", `select punctual.schedule('s', NULL, every => interval '1 hour')`, "task", /^punctual\.schedule: task must be /],
  ["a schedule with neither cron nor every", `select punctual.schedule('s', 'tick')`, "cron", /^punctual\.schedule: cron or every is required/],
  ["a schedule with both cron and every", `select punctual.schedule('s', 'tick', cron => '0 8 * * *', every => interval '1 hour')`, "every", /^punctual\.schedule: every must be null when cron is given/],
  ["a cron with 4 fields", `select punctual.schedule('s', 'tick', cron => '0 8 * *')`, "cron", /^punctual\.schedule: cron must be a cron expression of 5 fields \(6 with seconds first\) or a macro such as @daily, got "0 8 \* \*"$/],
  ["a cron in words", `select punctual.schedule('s', 'tick', cron => 'every day at 8')`, "cron", /got "every day at 8"$/],
  ["an unknown time zone", `select punctual.schedule('s', 'tick', cron => '0 8 * * *', tz => 'Europe/Atlantis')`, "tz", /^punctual\.schedule: tz must be an IANA time zone such as "Europe\/Paris", got "Europe\/Atlantis"$/],
  ["a POSIX offset as time zone", `select punctual.schedule('s', 'tick', cron => '0 8 * * *', tz => 'UTC+3')`, "tz", /got "UTC\+3"$/],
  ["an abbreviation as time zone", `select punctual.schedule('s', 'tick', cron => '0 8 * * *', tz => 'CEST')`, "tz", /got "CEST"$/],
  ["a time zone with an interval", `select punctual.schedule('s', 'tick', every => interval '1 hour', tz => 'Europe/Paris')`, "tz", /^punctual\.schedule: tz applies to cron rules only/],
  ["an interval under 100 ms", `select punctual.schedule('s', 'tick', every => interval '50 milliseconds')`, "every", /^punctual\.schedule: every must be an interval from 100 ms to 366 days, got 50 ms$/],
  ["a negative interval", `select punctual.schedule('s', 'tick', every => interval '-1 hour')`, "every", /got -3600000 ms$/],
  ["an interval over 366 days", `select punctual.schedule('s', 'tick', every => interval '400 days')`, "every", /got 34560000000 ms$/],
  ["an unknown missed policy", `select punctual.schedule('s', 'tick', every => interval '1 hour', missed => 'later')`, "missed", /^punctual\.schedule: missed must be 'once', 'skip' or 'all', got "later"$/],
  ["fixed_delay with a cron rule", `select punctual.schedule('s', 'tick', cron => '0 8 * * *', fixed_delay => true)`, "fixed_delay", /^punctual\.schedule: fixed_delay applies to interval rules \(every\) only/],
  ["a schedule priority out of range", `select punctual.schedule('s', 'tick', every => interval '1 hour', priority => 11)`, "priority", /^punctual\.schedule: priority must be an integer from -10 to 10, got 11$/],
  ["a schedule queue with a space", `select punctual.schedule('s', 'tick', every => interval '1 hour', queue => 'a b')`, "queue", /queue must be 1-64/],
  ["schedule max_attempts of zero", `select punctual.schedule('s', 'tick', every => interval '1 hour', max_attempts => 0)`, "max_attempts", /from 1 to 1000, got 0$/],

  // punctual.schedule_many
  ["schedules that are not an array", `select * from punctual.schedule_many('"s"')`, "schedules", /^punctual\.schedule_many: schedules must be a JSON array, got "s"$/],
  ["an interval given as text", schedMany(sched(`"every_ms": 3600000`), `{"key": "b", "task": "tick", "every_ms": "1h"}`), "schedules[1].every_ms", /^punctual\.schedule_many: schedules\[1\]\.every_ms must be an interval from 100 ms to 366 days, got "1h"$/],
  ["an unknown zone in element 1", schedMany(sched(`"every_ms": 3600000`), `{"key": "b", "task": "tick", "cron": "0 8 * * *", "tz": "Mars/Olympus"}`), "schedules[1].tz", /schedules\[1\]\.tz must be an IANA time zone/],
  ["a slot_at that is not a timestamp", schedMany(sched(`"every_ms": 3600000, "slot_at": "soon"`)), "schedules[0].slot_at", /slot_at must be a finite timestamp.*, got "soon"$/],
  ["a schedule without a key in a batch", schedMany(`{"task": "tick", "every_ms": 3600000}`), "schedules[0].key", /key must be a string of 1-255 characters, got null$/],
  ["one schedule key twice", schedMany(sched(`"every_ms": 3600000`), sched(`"every_ms": 7200000`)), "schedules[1].key", /^punctual\.schedule_many: schedules\[1\]\.key "s" appears twice in one batch \(also schedules\[0\]\)$/],
  ["run_at in a schedule (not a schedule field)", schedMany(sched(`"every_ms": 3600000, "run_at": "2030-01-01T00:00:00Z"`)), "schedules[0]", /schedules\[0\] has unknown fields \{"run_at": .*\}; a schedule's fields are key, task, /],
  ["declared that is not a boolean", schedMany(sched(`"every_ms": 3600000, "declared": "yes"`)), "schedules[0].declared", /declared must be true or false, got "yes"$/],
];

describe("the SQL functions refuse bad input with SQLSTATE 22023, naming the parameter, and write nothing", () => {
  it.each(cases)("%s", async (_what, sql, column, message) => {
    const error = await refusal(sql);
    expect(error.message).toMatch(message);
    expect(error.code).toBe("22023");
    expect(error.column).toBe(column);
    expect(await snapshotJobs(db.pool)).toEqual(before);
  });
});

describe("what PostgreSQL refuses before the function runs", () => {
  // A parameter typed timestamptz, interval or integer is converted at the call site.
  it("a run_at that is not a timestamp: 22007 from the cast, naming the value", async () => {
    const error = await refusal(`select punctual.enqueue('noop', run_at => 'tomorrow-ish')`);
    expect(error.code).toBe("22007");
    expect(error.message).toMatch(/invalid input syntax for type timestamp with time zone: "tomorrow-ish"/);
    expect(await snapshotJobs(db.pool)).toEqual(before);
  });

  it("an interval that is not an interval: 22007 from the cast", async () => {
    const error = await refusal(`select punctual.schedule('s', 'tick', every => 'hourly')`);
    expect(error.code).toBe("22007");
    expect(error.message).toMatch(/invalid input syntax for type interval: "hourly"/);
  });

  it("NUL in JSON (\\u0000): 22P05, PostgreSQL's jsonb cannot hold it", async () => {
    const error = await refusal(`select * from punctual.enqueue_many($1)`, [`[{"task": "noop", "payload": {"note": "a\\u0000b"}}]`]);
    expect(error.code).toBe("22P05");
    expect(error.message).toMatch(/unsupported Unicode escape sequence/);
    expect(await snapshotJobs(db.pool)).toEqual(before);
  });
});

describe("what the checks accept", () => {
  it("boundary values, integral numbers written as decimals or strings, any JSON payload, nulls as defaults", async () => {
    const client = await db.pool.connect();
    try {
      await client.query("begin");
      const written = await client.query(
        "select id from punctual.enqueue_many($1) order by ord",
        [`[${[
          JSON.stringify({ task: "a".repeat(128), payload: "a string", queue: "q".repeat(64), key: "k".repeat(255), priority: -10, max_attempts: 1000 }),
          JSON.stringify({ task: "ns:task.v2_x-y", payload: [1, 2], priority: "10", max_attempts: 1, run_at: "2030-01-01T08:00:00+02:00", key: 7 }),
          JSON.stringify({ task: "noop", payload: null, queue: null, key: null, priority: null, max_attempts: null, run_at: null }),
          // JSON.stringify writes 3.0 as 3; other languages' encoders may not.
          `{"task": "noop", "priority": 3.0, "max_attempts": 2.00}`,
        ].join(", ")}]`],
      );
      // A second statement: the rows a statement writes are not in its own snapshot.
      const { rows } = await client.query(
        "select payload, queue, key, priority, max_attempts, run_at from punctual.jobs where id = any($1) order by id",
        [written.rows.map((r) => r.id)],
      );
      expect(rows.map((r) => [r.payload, r.priority, r.max_attempts])).toEqual([
        ["a string", -10, 1000],
        [[1, 2], 10, 1],
        [{}, 0, 5],
        [{}, 3, 2],
      ]);
      expect(rows[1].run_at).toEqual(new Date("2030-01-01T06:00:00Z"));
      expect(rows[1].key).toBe("7");
      expect(rows[2].queue).toBe("default");

      const schedules = await client.query(
        `select punctual.schedule('tz-etc', 'tick', cron => '@daily', tz => 'Etc/GMT+3') as a,
                punctual.schedule('tz-top', 'tick', cron => '0 0 8 * * MON-FRI', tz => 'EST5EDT') as b,
                punctual.schedule('tz-utc', 'tick', cron => '0 8 * * *', tz => 'UTC') as c,
                punctual.schedule('fast', 'tick', every => interval '100 milliseconds', fixed_delay => true, missed => 'all') as d,
                punctual.schedule('tz-icu', 'tick', cron => '0 8 * * *', tz => 'PST') as e,
                punctual.schedule('tz-lower', 'tick', cron => '0 8 * * *', tz => 'europe/paris') as f`,
      );
      expect(Object.values(schedules.rows[0]).every((id) => id !== null)).toBe(true);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });
});
