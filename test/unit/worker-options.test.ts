import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createWorker, defineTask, ValidationError } from "../../src/index.js";

const task = defineTask({ name: "t", payload: z.object({}), run: () => {} });
const url = "postgres://nobody@127.0.0.1:1/none"; // never connected: options are checked first

describe("createWorker refuses bad options, naming the option", () => {
  it.each([
    ["a retention that is not a duration", { retention: "7 weeks" }, "retention", /false \(keep finished jobs\) or a duration/],
    ["a negative retention", { retention: -1 }, "retention", />=0/],
    ["a pool that is not a pool", { connectionString: undefined, pool: { query() {} } }, "pool", /must be a pg Pool/],
    ["no tasks", { tasks: [] }, "tasks", /at least one task/],
    ["a negative prefetch", { prefetch: -1 }, "prefetch", />=0/],
    ["a fractional prefetch", { prefetch: 2.5 }, "prefetch", /expected int/],
    ["a buffer hold over half the lease", { leaseMs: 1000, bufferHoldMs: 600 }, "bufferHoldMs", /at most half of leaseMs \(500\), got 600/],
  ])("%s", (_what, options, field, message) => {
    const make = () => createWorker({ connectionString: url, tasks: [task], ...(options as object) });
    expect(make).toThrow(ValidationError);
    expect(make).toThrow(message);
    try {
      make();
    } catch (error) {
      expect((error as ValidationError).field).toBe(field);
    }
  });
});
