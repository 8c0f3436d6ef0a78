import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineTask, ValidationError } from "../../src/index.js";
import { payloadToJson, TaskRegistry } from "../../src/tasks.js";

const task = defineTask({ name: "t", payload: z.object({ at: z.coerce.date() }), run: () => {} });

describe("defineTask", () => {
  it.each([
    ["an empty name", { name: "", payload: z.object({}), run: () => {} }, "name"],
    ["a name with spaces", { name: "send email", payload: z.object({}), run: () => {} }, "name"],
    ["a payload that is not a zod schema", { name: "x", payload: { parse() {} }, run: () => {} }, "payload"],
    ["a missing handler", { name: "x", payload: z.object({}) }, "run"],
  ])("refuses %s", (_what, definition, field) => {
    expect(() => defineTask(definition as never)).toThrow(ValidationError);
    try {
      defineTask(definition as never);
    } catch (error) {
      expect((error as ValidationError).field).toBe(field);
    }
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
});
