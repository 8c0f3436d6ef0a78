import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClient, defineTask, ValidationError, type Client } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { loadSecondZod, type SecondZod } from "../support/second-zod.js";

let db: TestDatabase;
let punctual: Client;
let second: SecondZod;

beforeAll(async () => {
  [db, second] = await Promise.all([createTestDatabase(), loadSecondZod()]);
  punctual = createClient({ executor: db.pool });
});
afterAll(async () => {
  await Promise.all([db?.drop(), second?.remove()]);
});
beforeEach(() => db.pool.query("truncate punctual.jobs"));

describe("a payload schema from another copy of zod (an app that resolves its own zod)", () => {
  // Each entry point of the copy builds the same schema: { to: email, count?: int }.
  const flavours: [string, (s: SecondZod) => unknown][] = [
    ["zod 4", ({ v4 }) => v4.object({ to: v4.email(), count: v4.int().optional() })],
    ["zod 3 (zod/v3)", ({ v3 }) => v3.object({ to: v3.string().email(), count: v3.number().int().optional() })],
    ["zod mini", ({ mini }) => mini.object({ to: mini.email(), count: mini.optional(mini.int()) })],
  ];

  it("is a distinct module instance", () => {
    expect(second.v4.ZodType).not.toBe(z.ZodType);
  });

  it.each(flavours)("%s: defineTask accepts it, enqueue validates and stores the payload", async (flavour, build) => {
    const schema = build(second);
    const name = `notify-${flavour.replace(/\W+/g, "-")}`;
    // zod 3 and mini schemas are not zod 4's TypeScript type: an app casts, Punctual checks the shape.
    const task = defineTask({ name, payload: schema as z.ZodType<{ to: string; count?: number }>, run: () => {} });

    const { id } = await punctual.enqueue(task, { to: "ada@example.com", count: 2 });
    expect((await punctual.get(id))?.payload).toEqual({ to: "ada@example.com", count: 2 });

    const refused = await punctual.enqueue(task, { to: "not-an-email" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ValidationError);
    expect((refused as ValidationError).field).toBe("payload.to");

    const fractional = await punctual.enqueueMany([{ task, payload: { to: "a@example.com", count: 1.5 } }]).catch((e: unknown) => e);
    expect((fractional as ValidationError).field).toBe("payload.count");
  });
});
