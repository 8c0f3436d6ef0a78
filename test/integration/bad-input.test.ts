import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, UnknownTaskError, ValidationError, type Client } from "../../src/index.js";
import { createTestDatabase, snapshotJobs, type TestDatabase } from "../support/database.js";
import { noop, sendEmail } from "../fixtures/tasks.js";

let db: TestDatabase;
let punctual: Client;
let before: unknown[];

beforeAll(async () => {
  db = await createTestDatabase();
  punctual = createClient({ executor: db.pool, tasks: [noop, sendEmail] });
  // Some existing jobs, so that "unchanged" means something.
  await punctual.enqueue(sendEmail, { to: "existing@example.com" }, { key: "existing", delay: "1h" });
  await punctual.enqueue(noop, { n: 1 });
  before = await snapshotJobs(db.pool);
});
afterAll(() => db.drop());

const cycle: Record<string, unknown> = { a: 1 };
cycle.self = cycle;

/** [what, call, field named by the error, message fragment] */
const cases: [string, () => Promise<unknown>, string, RegExp][] = [
  ["unknown task name", () => punctual.enqueue("no-such-task", {}), "task", /unknown task "no-such-task"; known tasks: noop, send-email/],
  ["payload failing its schema", () => punctual.enqueue(sendEmail, { to: "not-an-email" }), "payload.to", /email/i],
  ["payload missing a field", () => punctual.enqueue(sendEmail, {} as never), "payload.to", /expected string/],
  ["payload with a BigInt", () => punctual.enqueue(noop, { n: 1, big: 10n } as never), "payload.big", /BigInt/],
  ["payload with a cycle", () => punctual.enqueue(noop, cycle as never), "payload.self", /cycle/],
  ["payload with a function", () => punctual.enqueue(noop, { n: 1, fn: () => 1 } as never), "payload.fn", /function/],
  ["payload with NaN", () => punctual.enqueue(noop, { n: Number.NaN }), "payload.n", /expected number|not representable/],
  ["payload with Infinity in a nested list", () => punctual.enqueue(noop, { n: 1, list: [1, Infinity] } as never), "payload.list.1", /not representable/],
  ["payload with a class instance", () => punctual.enqueue(noop, { n: 1, m: new Map() } as never), "payload.m", /Map instance/],
  ["oversized payload", () => punctual.enqueue(noop, { n: 1, blob: "x".repeat(1024 * 1024) } as never), "payload", /bytes of JSON; the limit is 1048576/],
  ["runAt that is not a valid date", () => punctual.enqueue(noop, {}, { runAt: new Date("nonsense") }), "runAt", /valid Date or an ISO 8601/],
  ["runAt string that is not ISO 8601", () => punctual.enqueue(noop, {}, { runAt: "tomorrow at noon" }), "runAt", /valid Date or an ISO 8601/],
  ["runAt and delay together", () => punctual.enqueue(noop, {}, { runAt: new Date(), delay: 5 }), "delay", /not both/],
  // due times PostgreSQL cannot read back from ISO 8601 (years 1 to 9999), and a delay past them
  ["runAt after the year 9999", () => punctual.enqueue(noop, {}, { runAt: new Date("+010000-01-01T00:00:00Z") }), "runAt", /years 1 and 9999/],
  ["runAt in the year 0", () => punctual.enqueue(noop, {}, { runAt: "0000-12-31T23:00:00Z" }), "runAt", /years 1 and 9999/],
  ["runAt whose zone moves it past 9999", () => punctual.enqueue(noop, {}, { runAt: "9999-12-31T23:00:00-05:00" }), "runAt", /years 1 and 9999/],
  ["delay past the year 9999", () => punctual.enqueue(noop, {}, { delay: 1e20 }), "delay", /after the year 9999/],
  ["runAt out of range in a batch", () => punctual.enqueueMany([{ task: noop, payload: {} }, { task: noop, payload: {}, runAt: new Date(-1e14) }]), "jobs.1.runAt", /years 1 and 9999/],
  ["negative delay", () => punctual.enqueue(noop, {}, { delay: -1 }), "delay", /negative/],
  ["unparseable delay", () => punctual.enqueue(noop, {}, { delay: "soon" }), "delay", /"10s"/],
  ["key over the length limit", () => punctual.enqueue(noop, {}, { key: "k".repeat(256) }), "key", /at most 255/],
  ["empty key", () => punctual.enqueue(noop, {}, { key: "" }), "key", /empty/],
  ["priority out of range", () => punctual.enqueue(noop, {}, { priority: 11 }), "priority", /<=10/],
  ["fractional priority", () => punctual.enqueue(noop, {}, { priority: 1.5 }), "priority", /expected int/],
  ["queue name with spaces", () => punctual.enqueue(noop, {}, { queue: "my queue" }), "queue", /letters, digits/],
  ["maxAttempts of zero", () => punctual.enqueue(noop, {}, { maxAttempts: 0 }), "maxAttempts", />=1/],
  ["unknown onConflict", () => punctual.enqueue(noop, {}, { onConflict: "merge" as never }), "onConflict", /replace|keep/],
  ["one bad job in a batch", () => punctual.enqueueMany([{ task: noop, payload: {} }, { task: sendEmail, payload: { to: 42 } }]), "jobs.1.payload.to", /expected string/],
  ["one key twice in a batch", () => punctual.enqueueMany([{ task: noop, payload: {}, key: "k" }, { task: noop, payload: {}, key: "k" }]), "jobs.1.key", /appears twice/],
  ["unknown task in a batch", () => punctual.enqueueMany([{ task: noop, payload: {} }, { task: "nope", payload: {} }]), "jobs.1.task", /unknown task/],
  ["something that is not an executor", () => punctual.enqueue(noop, {}, { executor: {} as never }), "executor", /pg Pool/],
  ["an unknown option (a typo)", () => punctual.enqueue(noop, {}, { dealy: "5m" } as never), "dealy", /Unrecognized key/],
  ["delay that is NaN", () => punctual.enqueue(noop, {}, { delay: Number.NaN }), "delay", /finite number of milliseconds or a string like "10s"/],
  ["delay of another type", () => punctual.enqueue(noop, {}, { delay: true as never }), "delay", /finite number of milliseconds or a string like "10s"/],
  // text PostgreSQL cannot store: NUL anywhere, and unpaired UTF-16 surrogates (jsonb refuses both)
  ["payload string with a NUL character", () => punctual.enqueue(noop, { n: 1, note: "a\u0000b" } as never), "payload.note", /NUL character/],
  ["payload key with a NUL character", () => punctual.enqueue(noop, { n: 1, "a\u0000b": 1 } as never), "payload.a\\u0000b", /key contains a NUL character/],
  ["payload string with an unpaired surrogate", () => punctual.enqueue(noop, { n: 1, note: "x\ud800" } as never), "payload.note", /unpaired UTF-16 surrogate/],
  ["payload string with a lone low surrogate, nested", () => punctual.enqueue(noop, { n: 1, list: ["ok", "\udc00y"] } as never), "payload.list.1", /unpaired UTF-16 surrogate/],
  ["key with a NUL character", () => punctual.enqueue(noop, {}, { key: "k\u0000" }), "key", /NUL character/],
  ["get by a key with a NUL character", () => punctual.get("k\u0000"), "key", /NUL character/],
  ["cancel of a key with an unpaired surrogate", () => punctual.cancel("k\ud800"), "key", /unpaired UTF-16 surrogate/],
  ["get by an id that is not an integer", () => punctual.get(1.5), "id", /integer job id/],
  ["key with an unpaired surrogate", () => punctual.enqueue(noop, {}, { key: "k\ud800" }), "key", /unpaired UTF-16 surrogate/],
  ["task name with a NUL character", () => punctual.enqueue("noop\u0000", {}), "task", /1-128 letters/],
  ["queue name with a NUL character", () => punctual.enqueue(noop, {}, { queue: "q\u0000" }), "queue", /letters, digits/],
  ["NUL in a batch", () => punctual.enqueueMany([{ task: noop, payload: {} }, { task: noop, payload: { n: 1, note: "\u0000" } }]), "jobs.1.payload.note", /NUL character/],
  // something that is not a task
  ["a task object without schema or handler", () => punctual.enqueue({ name: "ghost" } as never, {}), "task", /not a task/],
  ["undefined as the task", () => punctual.enqueue(undefined as never, {}), "task", /not a task/],
  ["a number as the task", () => punctual.enqueue(42 as never, {}), "task", /not a task/],
  ["a task name outside the name rule", () => punctual.enqueue("send email", {}), "task", /1-128 letters/],
  ["an over-long task name", () => punctual.enqueue("t".repeat(129), {}), "task", /1-128 letters/],
  ["a task object with a bad name", () => punctual.enqueue({ ...noop, name: "no op" }, {}), "task", /1-128 letters/],
  ["a non-task in a batch", () => punctual.enqueueMany([{ task: noop, payload: {} }, { task: null as never, payload: {} }]), "jobs.1.task", /not a task/],
  // schedules
  ["invalid cron", () => punctual.schedule("s", noop, {}, { cron: "0 25 * * *" }), "rule.cron", /not a valid cron expression/],
  ["cron with 4 fields", () => punctual.schedule("s", noop, {}, { cron: "0 8 * *" }), "rule.cron", /4 fields/],
  ["unknown time zone", () => punctual.schedule("s", noop, {}, { cron: "0 8 * * *", tz: "Europe/Atlantis" }), "rule.tz", /IANA/],
  ["non-positive interval", () => punctual.schedule("s", noop, {}, { every: 0 }), "rule.every", /at least 100 ms/],
  ["absurd interval", () => punctual.schedule("s", noop, {}, { every: "5000d" }), "rule.every", /at most 366 days/],
  ["unparseable interval", () => punctual.schedule("s", noop, {}, { every: "hourly" }), "rule.every", /"10s"/],
  ["both cron and every", () => punctual.schedule("s", noop, {}, { cron: "0 8 * * *", every: "1h" } as never), "rule", /either cron/],
  ["unknown missed policy", () => punctual.schedule("s", noop, {}, { every: "1h", missed: "later" as never }), "rule.missed", /once/],
  ["schedule without a key", () => punctual.schedule(undefined as never, noop, {}, { every: "1h" }), "key", /needs a key/],
  ["startAt with a cron rule", () => punctual.schedule("s", noop, {}, { cron: "0 8 * * *" }, { startAt: new Date() }), "startAt", /interval rules only/],
  ["schedule payload failing its schema", () => punctual.schedule("s", sendEmail, { to: "x" }, { every: "1h" }), "payload.to", /email/i],
  ["one bad schedule among many", () => punctual.scheduleMany([
    { key: "a", task: noop, payload: {}, rule: { every: "1h" } },
    { key: "b", task: noop, payload: {}, rule: { cron: "nope" } },
  ]), "schedules.1.rule.cron", /fields|not a valid/],
  ["unparseable interval: NaN", () => punctual.schedule("s", noop, {}, { every: Number.NaN }), "rule.every", /finite number of milliseconds or a string like "10s"/],
  ["schedule key with a NUL character", () => punctual.schedule("s\u0000", noop, {}, { every: "1h" }), "key", /NUL character/],
  ["schedule payload with a NUL character", () => punctual.schedule("s", noop, { n: 1, note: "\u0000" } as never, { every: "1h" }), "payload.note", /NUL character/],
  ["cron with a NUL character", () => punctual.schedule("s", noop, {}, { cron: "0 8 * * *\u0000" }), "rule.cron", /NUL character/],
  ["time zone with a NUL character", () => punctual.schedule("s", noop, {}, { cron: "0 8 * * *", tz: "UTC\u0000" }), "rule.tz", /NUL character/],
  ["schedule of something that is not a task", () => punctual.schedule("s", { name: "ghost" } as never, {}, { every: "1h" }), "task", /not a task/],
  ["a non-task among schedules", () => punctual.scheduleMany([
    { key: "a", task: noop, payload: {}, rule: { every: "1h" } },
    { key: "b", task: undefined as never, payload: {}, rule: { every: "1h" } },
  ]), "schedules.1.task", /not a task/],
  ["a declared schedule of something that is not a task", () => punctual.reconcileSchedules([
    { key: "d", task: { name: "ghost" } as never, payload: {}, rule: { every: "1h" } },
  ]), "schedules.0.task", /not a task/],
  ["one key twice among schedules", () => punctual.scheduleMany([
    { key: "a", task: noop, payload: {}, rule: { every: "1h" } },
    { key: "a", task: noop, payload: {}, rule: { every: "2h" } },
  ]), "schedules.1.key", /appears twice/],
];

describe("bad input gets a clear error naming the field, and writes nothing", () => {
  it.each(cases)("%s", async (_what, call, field, message) => {
    const error = await call().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    expect((error as ValidationError).message).toMatch(message);
    expect(await snapshotJobs(db.pool)).toEqual(before);
  });

  it("an unknown task is an UnknownTaskError", async () => {
    await expect(punctual.enqueue("no-such-task", {})).rejects.toBeInstanceOf(UnknownTaskError);
  });
});
