import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineTask, UnknownTaskError, ValidationError } from "../../src/index.js";
import { payloadToJson, TaskRegistry } from "../../src/tasks.js";

const task = defineTask({ name: "t", payload: z.object({ at: z.coerce.date() }), run: () => {} });

describe("defineTask", () => {
  it.each([
    ["an empty name", { name: "", payload: z.object({}), run: () => {} }, "name"],
    ["a name with spaces", { name: "send email", payload: z.object({}), run: () => {} }, "name"],
    ["a payload that is not a zod schema", { name: "x", payload: { parse() {} }, run: () => {} }, "payload"],
    ["a missing handler", { name: "x", payload: z.object({}) }, "run"],
    ["no definition at all", undefined, "definition"],
  ])("refuses %s", (_what, definition, field) => {
    expect(() => defineTask(definition as never)).toThrow(ValidationError);
    try {
      defineTask(definition as never);
    } catch (error) {
      expect((error as ValidationError).field).toBe(field);
    }
  });

  it("accepts any schema with a safeParse function, such as one from another copy of zod", () => {
    const schema = { safeParse: (value: unknown) => ({ success: true as const, data: value }) };
    expect(defineTask({ name: "x", payload: schema as never, run: () => {} }).payload).toBe(schema);
  });

  it("returns a frozen task", () => {
    expect(Object.isFrozen(task)).toBe(true);
  });
});

describe("payloads", () => {
  it("stores the payload as given when it survives a JSON round trip", () => {
    expect(payloadToJson(task, { at: new Date("2030-01-01T00:00:00Z") })).toBe('{"at":"2030-01-01T00:00:00.000Z"}');
  });

  it("refuses a payload the worker could not parse back after JSON", () => {
    const strictDate = defineTask({ name: "d", payload: z.object({ at: z.date() }), run: () => {} });
    expect(() => payloadToJson(strictDate, { at: new Date() })).toThrow(/payload: does not survive JSON/);
  });
});

describe("TaskRegistry", () => {
  it("refuses two different tasks with one name", () => {
    const twin = defineTask({ name: "t", payload: z.object({}), run: () => {} });
    expect(() => new TaskRegistry([task, twin])).toThrow(/two different tasks are named "t"/);
  });

  const registry = new TaskRegistry([task]);
  const fieldOf = (call: () => unknown) => {
    try {
      call();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      return [(error as ValidationError).field, (error as Error).message];
    }
    return expect.unreachable();
  };

  it.each([
    ["undefined", undefined, /^jobs\.2\.task: not a task: undefined/],
    ["null", null, /not a task: null/],
    ["a number", 42, /not a task: a number/],
    ["an object with only a name", { name: "ghost" }, /not a task: an object without a payload schema \(safeParse\) or a run function/],
    ["an object whose payload is not a schema", { name: "ghost", payload: {}, run() {} }, /without a payload schema/],
  ])("refuses %s, naming the field", (_what, value, message) => {
    const [field, text] = fieldOf(() => registry.resolve(value as never, "jobs.2.task"));
    expect(field).toBe("jobs.2.task");
    expect(text).toMatch(message);
  });

  it("applies the name rule to names and task objects before looking them up", () => {
    expect(fieldOf(() => registry.resolve("send email"))).toEqual(["task", expect.stringMatching(/must be 1-128 letters/)]);
    expect(fieldOf(() => registry.resolve("x".repeat(129)))).toEqual(["task", expect.stringMatching(/must be 1-128 letters/)]);
    expect(fieldOf(() => registry.resolve({ ...task, name: "a b" }))).toEqual(["task", expect.stringMatching(/"a b" must be 1-128 letters/)]);
    expect(() => registry.resolve("ghost")).toThrow(UnknownTaskError);
  });

  it("refuses a task list with something that is not a task, naming its index", () => {
    expect(fieldOf(() => new TaskRegistry([task, undefined as never]))).toEqual(["tasks.1", expect.stringMatching(/not a task: undefined/)]);
    expect(fieldOf(() => new TaskRegistry([{ name: "a b", payload: z.object({}), run() {} }]))).toEqual(["tasks.0", expect.stringMatching(/1-128 letters/)]);
    expect(fieldOf(() => new TaskRegistry(task as never))).toEqual(["tasks", expect.stringMatching(/must be an array/)]);
  });

  it("accepts a task object it was not given, if it looks like one made by defineTask", () => {
    const lookAlike = { name: "elsewhere", payload: z.object({}), run: () => {} };
    expect(registry.resolve(lookAlike)).toBe(lookAlike);
    expect(registry.resolve("t")).toBe(task);
  });
});
