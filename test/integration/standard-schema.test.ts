import * as v from "valibot";
import { describe, expect, expectTypeOf, it } from "vitest";
import { defineTask, ValidationError, type PayloadInput, type PayloadOutput, type StandardSchemaV1 } from "../../src/index.js";
import { isTask, TaskRegistry } from "../../src/tasks.js";
import { drain, runJob } from "../../src/testing/index.js";
import { snapshotJobs } from "../support/database.js";
import { next } from "../support/events.js";
import { workerHarness } from "../support/worker-harness.js";

const h = workerHarness({ pollIntervalMs: 50 });

/** What handlers received, in order. */
const received: unknown[] = [];

/** A valibot schema: an email, and a count that defaults to 1 (the handler gets the output). */
const notifySchema = v.object({
  to: v.pipe(v.string(), v.email("must be an email")),
  count: v.optional(v.pipe(v.number(), v.integer("must be an integer")), 1),
});

const notify = defineTask({
  name: "notify-valibot",
  payload: notifySchema,
  run: (payload) => {
    received.push(payload);
  },
});

/** The rejection of `promise`, which must be a ValidationError. */
async function refusal(promise: Promise<unknown>): Promise<ValidationError> {
  const error = await promise.then(
    () => expect.unreachable("expected a ValidationError"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ValidationError);
  return error as ValidationError;
}

describe("a valibot schema", () => {
  it("types the payload from the schema: input for enqueue, output for the handler", () => {
    expectTypeOf<PayloadInput<typeof notifySchema>>().toEqualTypeOf<{ to: string; count?: number | undefined }>();
    expectTypeOf<PayloadOutput<typeof notifySchema>>().toEqualTypeOf<{ to: string; count: number }>();
    expectTypeOf(notify.run).parameter(0).toEqualTypeOf<{ to: string; count: number }>();
    // @ts-expect-error: `to` must be a string
    void (() => h.punctual.enqueue(notify, { to: 42 }));
  });

  it("refuses a bad payload at enqueue, naming the field, and writes nothing", async () => {
    const before = await snapshotJobs(h.db.pool);
    const error = await refusal(h.punctual.enqueue(notify, { to: "not-an-email" }));
    expect(error.field).toBe("payload.to");
    expect(error.message).toBe("payload.to: must be an email");
    const batch = await refusal(
      h.punctual.enqueueMany([
        { task: notify, payload: { to: "a@example.com" } },
        { task: notify, payload: { to: "b@example.com", count: 1.5 } },
      ]),
    );
    expect(batch.message).toBe("jobs.1.payload.count: must be an integer");
    const schedule = await refusal(h.punctual.schedule("notify:x", notify, { to: "x" }, { every: "1h" }));
    expect(schedule.field).toBe("payload.to");
    expect(await snapshotJobs(h.db.pool)).toEqual(before);
  });

  it("a worker runs a good payload, and the handler gets the schema's output", async () => {
    received.length = 0;
    const worker = h.startWorker({ tasks: [notify] });
    const done = next(worker, "job:succeeded");
    const { id } = await h.punctual.enqueue(notify, { to: "ada@example.com" });
    const [job] = await done;
    expect(job.id).toBe(id);
    expect(received).toEqual([{ to: "ada@example.com", count: 1 }]);
    // Stored as given; the default is the handler's.
    expect((await h.punctual.get(id))?.payload).toEqual({ to: "ada@example.com" });
  });

  it("a worker fails a payload written by SQL that the schema refuses, once, naming the field", async () => {
    const worker = h.startWorker({ tasks: [notify] });
    const failed = next(worker, "job:failed");
    await h.db.pool.query(`select punctual.enqueue('notify-valibot', '{"to": "nope"}')`);
    const [job, { error }] = await failed;
    expect(error).toBeInstanceOf(ValidationError);
    expect((await h.punctual.get(job.id))?.lastError).toBe('payload.to: does not match task "notify-valibot": payload.to: must be an email');
    expect(job.attempt).toBe(1);
  });

  it("works with the test helpers", async () => {
    received.length = 0;
    await runJob(notify, { to: "run@example.com", count: 3 });
    expect((await refusal(runJob(notify, { to: "nope" }))).field).toBe("payload.to");
    await h.punctual.enqueue(notify, { to: "drain@example.com" });
    expect((await drain({ pool: h.db.pool, tasks: [notify] })).succeeded).toHaveLength(1);
    expect(received).toEqual([
      { to: "run@example.com", count: 3 },
      { to: "drain@example.com", count: 1 },
    ]);
  });

  it("async checks are awaited at enqueue and in the worker", async () => {
    const known = new Set(["ok-1"]);
    const redeem = defineTask({
      name: "redeem",
      payload: v.objectAsync({
        code: v.pipeAsync(
          v.string(),
          v.checkAsync(async (code) => known.has(code), "is not a known code"),
        ),
      }),
      run: (payload) => {
        received.push(payload);
      },
    });
    const error = await refusal(h.punctual.enqueue(redeem, { code: "ok-2" }));
    expect(error.message).toBe("payload.code: is not a known code");
    received.length = 0;
    const worker = h.startWorker({ tasks: [redeem] });
    const done = next(worker, "job:succeeded");
    await h.punctual.enqueue(redeem, { code: "ok-1" });
    await done;
    expect(received).toEqual([{ code: "ok-1" }]);
  });
});

describe("a hand-written Standard Schema", () => {
  /** The whole interface, by hand: `~standard` with version, vendor and validate. */
  function positive(): StandardSchemaV1<{ n: number; items?: { id: string }[] }> {
    return {
      "~standard": {
        version: 1,
        vendor: "by-hand",
        validate(value) {
          const input = value as { n?: unknown; items?: { id?: unknown }[] };
          if (typeof input?.n !== "number" || input.n <= 0) return { issues: [{ message: "must be a positive number", path: [{ key: "n" }] }] };
          const bad = (input.items ?? []).findIndex((item) => typeof item.id !== "string");
          if (bad >= 0) return { issues: [{ message: "must be a string", path: ["items", bad, { key: "id" }] }, { message: "another" }] };
          return { value: value as { n: number } };
        },
      },
    };
  }

  const countTo = defineTask({ name: "count-to", payload: positive(), run: ({ n }) => void received.push(n) });

  it("is a task schema: enqueue checks it, naming the field from its path segments", async () => {
    expect(isTask(countTo)).toBe(true);
    expect(new TaskRegistry([countTo]).resolve("count-to")).toBe(countTo);
    expect((await refusal(h.punctual.enqueue(countTo, { n: -1 }))).message).toBe("payload.n: must be a positive number");
    expect((await refusal(h.punctual.enqueue(countTo, { n: 1, items: [{ id: "a" }, { id: 2 as never }] }))).message).toBe(
      "payload.items.1.id: must be a string (and 1 more)",
    );
  });

  it("a worker runs a job of it", async () => {
    received.length = 0;
    const worker = h.startWorker({ tasks: [countTo] });
    const done = next(worker, "job:succeeded");
    await h.punctual.enqueue(countTo, { n: 3 });
    await done;
    expect(received).toEqual([3]);
  });

  it("an issue without a path names the payload; a validator that throws is a ValidationError", async () => {
    const noPath = defineTask({
      name: "no-path",
      payload: { "~standard": { version: 1, vendor: "x", validate: () => ({ issues: [{ message: "nope" }] }) } },
      run: () => {},
    });
    expect((await refusal(h.punctual.enqueue(noPath, {}))).message).toBe("payload: nope");
    const throwing = defineTask({
      name: "throwing",
      payload: { "~standard": { version: 1, vendor: "x", validate: () => { throw new Error("boom"); } } },
      run: () => {},
    });
    expect((await refusal(h.punctual.enqueue(throwing, {}))).message).toBe("payload: the schema threw: boom");
    const rejecting = defineTask({
      name: "rejecting",
      payload: { "~standard": { version: 1, vendor: "x", validate: () => Promise.reject(new Error("async boom")) } },
      run: () => {},
    });
    expect((await refusal(h.punctual.enqueue(rejecting, {}))).message).toBe("payload: the schema threw: async boom");
  });

  it("defineTask refuses what is neither a Standard Schema nor a zod schema", () => {
    for (const payload of [{}, { "~standard": { version: 2, validate: () => ({ value: 1 }) } }, { "~standard": { version: 1 } }]) {
      expect(() => defineTask({ name: "x", payload: payload as never, run: () => {} })).toThrow(
        /^payload: must be a schema: a Standard Schema validator \(zod, valibot, arktype, \.\.\.: an object with ~standard\.validate\)/,
      );
    }
  });
});
