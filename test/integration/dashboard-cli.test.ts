import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// `punctual dashboard` as a user runs it: the real CLI, through tsx.
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

function start(args: string[], env: Record<string, string> = {}) {
  return spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "dashboard", ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: "info", PUNCTUAL_DASHBOARD_TOKEN: "", PUNCTUAL_DASHBOARD_BASIC_AUTH: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function run(args: string[], env: Record<string, string> = {}) {
  const child = start(args, env);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
  const [code] = await once(child, "close");
  return { code: code as number, stderr };
}

it("refuses to listen beyond loopback without a token or basic auth: one line, exit 2", async () => {
  const refused = await run(["--host", "0.0.0.0", "--port", "0"]);
  expect(refused.code).toBe(2);
  expect(refused.stderr.trim()).toMatch(/^punctual dashboard: --host: refusing to listen on 0\.0\.0\.0 without authentication: .* \(see punctual --help\)$/);
  expect(refused.stderr.trim().split("\n")).toHaveLength(1);
  const badAuth = await run(["--basic-auth", "nocolon"]);
  expect(badAuth).toEqual({ code: 2, stderr: "punctual dashboard: --basic-auth must be user:password (see punctual --help)\n" });
  const badPort = await run(["--port", "http"]);
  expect(badPort.code).toBe(2);
  expect(badPort.stderr).toMatch(/--port must be an integer from 0 to 65535; got "http"/);
});

it("with a token from the environment, on 0.0.0.0, --read-only: 401 without it, 200 with it, no actions; SIGTERM exits 0", async () => {
  const { rows } = await db.pool.query("insert into punctual.jobs (task, run_at) values ('later', now() + interval '1 day') returning id");
  const child = start(["--host", "0.0.0.0", "--port", "0", "--read-only"], { PUNCTUAL_DASHBOARD_TOKEN: "from-env" });
  const exited = once(child, "close");
  let url: string | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const entry = JSON.parse(line) as { msg?: string; url?: string };
    if (entry.msg === "dashboard listening") {
      url = entry.url;
      break;
    }
  }
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  expect((await fetch(url!)).status).toBe(401);
  const auth = { authorization: "Bearer from-env" };
  const overview = await fetch(url!, { headers: auth });
  expect(overview.status).toBe(200);
  expect(await overview.text()).toContain("read-only");
  expect((await fetch(`${url}jobs/${rows[0].id}/cancel`, { headers: auth })).status).toBe(403);
  child.kill("SIGTERM");
  const [code] = await exited;
  expect(code).toBe(0);
});
