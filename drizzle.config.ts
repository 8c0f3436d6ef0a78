import { defineConfig } from "drizzle-kit";

// drizzle-kit writes Punctual's migrations from src/schema.ts. Functions and triggers
// live in custom migrations (`npm run db:generate -- --custom --name=...`).
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/schema.ts",
  out: "./drizzle",
  schemaFilter: ["punctual"],
  migrations: { schema: "punctual", table: "migrations" },
  dbCredentials: { url: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
});
