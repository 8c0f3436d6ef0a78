import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// Every SQL statement the README shows must run as written.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const statements = [...readme.matchAll(/```sql\n([\s\S]*?)```/g)]
  .flatMap(([, block]) => block!.split(/;\s*\n/))
  .map((s) => s.replace(/^\s*--.*$/gm, "").trim())
  .filter(Boolean);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

it("the README shows SQL", () => {
  expect(statements.length).toBeGreaterThan(10);
});

it.each(statements.map((s) => [s.split("\n")[0], s]))("runs: %s", async (_first, statement) => {
  await expect(db.pool.query(statement!)).resolves.toBeDefined();
});
