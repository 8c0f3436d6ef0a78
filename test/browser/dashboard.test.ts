import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DateTime } from "luxon";
import { pino } from "pino";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  createClient,
  createDashboard,
  createWorker,
  defineTask,
  startDashboard,
  ValidationError,
  type RunningDashboard,
  type Worker,
} from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { next } from "../support/events.js";

// End to end in a real browser: Debian's Chromium (/usr/bin/chromium, installed by
// .ci/run), driven by playwright-core (no browser download). A worker runs the jobs
// the dashboard retries; the tests wait on its events and on the page, never on time.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const VIEWER_ZONE = "America/New_York";
const silent = pino({ level: "silent" });

/** While true, `flaky` fails with an error whose message holds markup. */
let flakyFails = true;
const flaky = defineTask({
  name: "flaky",
  payload: z.object({ to: z.string() }),
  maxAttempts: 1,
  run: () => {
    if (flakyFails) throw new Error("smtp down: 421 <too busy>");
  },
});
const digest = defineTask({ name: "digest", payload: z.object({}), run: () => {} });

let db: TestDatabase;
let worker: Worker;
let dashboard: RunningDashboard;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await seed(db);
  worker = createWorker({ connectionString: db.url, tasks: [flaky, digest], logger: silent, retention: false });
  await worker.start();
  dashboard = await startDashboard({ executor: db.pool, port: 0, logger: silent });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  context = await browser.newContext({ timezoneId: VIEWER_ZONE, viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await browser?.close();
  await dashboard?.close();
  await worker?.stop({ timeoutMs: 5000 });
  await db?.drop();
});

/** A table that looks lived in: an hour of finished jobs in three queues, a backlog, failures. */
async function seed(database: TestDatabase) {
  await database.pool.query(`
    insert into punctual.jobs (task, queue, state, attempts, created_at, run_at, started_at, finished_at)
    select t.task, t.queue, 'succeeded', 1, f - interval '2 seconds', f - interval '2 seconds', f - interval '1 second', f
    from generate_series(1, 1800) as g
    -- An uneven hour, all well inside it (the tests read it minutes later at most).
    cross join lateral (select now() - (g * 1.8 + 150 * sin(g / 150.0) + 2) * interval '1 second' as f) as at(f)
    cross join lateral (select (array['send-email', 'resize-image', 'nightly-report'])[1 + g % 3] as task,
                               (array['emails', 'default', 'reports'])[1 + g % 3] as queue) as t;
    insert into punctual.jobs (task, queue, state, attempts, max_attempts, finished_at, last_error)
    select 'resize-image', 'default', 'failed', 5, 5, now() - g * interval '4 minutes', 'image too large'
    from generate_series(1, 9) as g;
    insert into punctual.jobs (task, queue, run_at)
    select 'send-email', 'emails', now() - g * interval '1 second' from generate_series(1, 40) as g;
    insert into punctual.jobs (task, queue, run_at)
    select 'nightly-report', 'reports', now() + g * interval '1 hour' from generate_series(1, 12) as g;
    insert into punctual.jobs (task, queue, state, attempts, locked_by, locked_until, started_at)
    select 'resize-image', 'default', 'running', 1, 'worker-a:4711:9f2c', now() + interval '10 minutes', now() - g * interval '3 seconds'
    from generate_series(1, 3) as g;
  `);
}

async function insertJob(fields: Record<string, unknown>): Promise<number> {
  const names = Object.keys(fields);
  const { rows } = await db.pool.query(
    `insert into punctual.jobs (${names.join(", ")}) values (${names.map((_, i) => `$${i + 1}`).join(", ")}) returning id`,
    Object.values(fields),
  );
  return Number(rows[0].id);
}

const row = async (id: number) => (await db.pool.query("select * from punctual.jobs where id = $1", [id])).rows[0];

describe("the dashboard in Chromium", () => {
  it("overview: counts by state, the last hour, queues; times in the browser's zone", async () => {
    await page.goto(dashboard.url);
    // The page's script stores the browser's zone in a cookie and reloads once: times are then rendered in it.
    await page.waitForSelector(`html[data-viewer-zone="${VIEWER_ZONE}"]`);
    expect(await page.locator('[data-state="failed"] .n').textContent()).toBe("9");
    expect(await page.locator('[data-state="pending"] .n').textContent()).toBe("52");
    expect(await page.locator('[data-state="running"] .n').textContent()).toBe("3");
    expect(await page.locator("#throughput rect.finished").count()).toBe(12);
    expect(await page.locator("#last-hour").textContent()).toMatch(/1,809 finished, 9 failed/);
    const emails = page.locator('#queues tr[data-queue="emails"] td');
    expect(await emails.nth(1).textContent()).toBe("40");
    expect(await emails.nth(2).textContent()).toMatch(/^\d+s \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)$/);

    const png = await page.screenshot({ fullPage: true });
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    // The README's picture: refreshed on demand, so a test run leaves the work tree as it was.
    if (process.env.PUNCTUAL_UPDATE_SCREENSHOT) {
      await mkdir(new URL("../../docs/", import.meta.url), { recursive: true });
      await writeFile(new URL("../../docs/dashboard.png", import.meta.url), png);
    }
  });

  let failedId: number;
  it("jobs: filter the failed jobs of a task, open one, see its error and stack", async () => {
    const failed = next(worker, "job:failed");
    const client = createClient({ executor: db.pool, tasks: [flaky] });
    const { id } = await client.enqueue(flaky, { to: "ada@example.com" });
    failedId = id;
    expect((await failed)[0].id).toBe(id);

    await page.goto(`${dashboard.url}jobs`);
    await page.selectOption("#filter-state", "failed");
    await page.fill('input[name="task"]', "flaky");
    await page.click("#apply-filter");
    await page.waitForURL(/state=failed/);
    const rows = page.locator("#jobs tbody tr");
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute("data-job-id")).toBe(String(id));
    expect(await rows.first().locator("td.err").textContent()).toBe("smtp down: 421 <too busy>");

    await rows.first().locator("a").first().click();
    await page.waitForURL(new RegExp(`/jobs/${id}$`));
    expect(await page.locator("#last-error").textContent()).toBe("smtp down: 421 <too busy>");
    expect(await page.locator("#stack").textContent()).toMatch(/^Error: smtp down: 421 <too busy>\n\s+at /);
    expect(await page.locator("#attempts").textContent()).toBe("1 of 1");
    expect(await page.locator("#payload").textContent()).toBe('{\n  "to": "ada@example.com"\n}');
  });

  it("retry, confirmed: the worker runs it again and it succeeds", async () => {
    flakyFails = false;
    await page.click('[data-action="retry"]');
    await page.waitForURL(new RegExp(`/jobs/${failedId}/retry$`));
    expect(await page.locator("form.confirm").textContent()).toMatch(new RegExp(`Retry job ${failedId} \\(task flaky, failed, attempts 1 of 1\\)`));
    const succeeded = next(worker, "job:succeeded", (job) => job.id === failedId);
    await page.click("#confirm");
    await page.waitForURL(new RegExp(`/jobs/${failedId}\\?notice=`));
    expect(await page.locator(".notice").textContent()).toBe(`Job ${failedId} retried: now pending.`);
    await succeeded;
    await page.reload();
    expect(await page.locator("#job-fields .state").first().textContent()).toBe("succeeded");
    expect(await page.locator("#attempts").textContent()).toBe("2 of 2");
  });

  it("cancel a pending job, confirmed", async () => {
    const id = await insertJob({ task: "later", run_at: new Date(Date.now() + 86_400_000) });
    await page.goto(`${dashboard.url}jobs/${id}`);
    expect(await page.locator("[data-action]").evaluateAll((links) => links.map((a) => a.getAttribute("data-action")))).toEqual(["cancel", "run-now"]);
    await page.click('[data-action="cancel"]');
    await page.click("#confirm");
    await page.waitForURL(/notice=/);
    expect(await page.locator(".notice").textContent()).toBe(`Job ${id} cancelled: now cancelled.`);
    expect((await row(id)).state).toBe("cancelled");
  });

  it("bulk retry of a filter says how many, then retries them all", async () => {
    for (let i = 0; i < 3; i++) await insertJob({ task: "import-feed", state: "failed", attempts: 2, max_attempts: 2, finished_at: new Date(), last_error: "feed down" });
    await page.goto(`${dashboard.url}jobs?state=failed&task=import-feed`);
    await page.click('[data-bulk-action="retry"]');
    expect(await page.locator("form.confirm p").first().textContent()).toBe("Retry 3 failed jobs of task import-feed?");
    await page.click("#confirm");
    await page.waitForURL(/notice=/);
    expect(await page.locator(".notice").textContent()).toBe("Retry: 3 jobs retried.");
    const { rows } = await db.pool.query("select state, max_attempts from punctual.jobs where task = 'import-feed'");
    expect(rows).toEqual([0, 1, 2].map(() => ({ state: "pending", max_attempts: 3 })));
  });

  it("schedules: the next run in the schedule's zone and in the viewer's", async () => {
    const client = createClient({ executor: db.pool, tasks: [digest] });
    const scheduled = await client.schedule("digest:tokyo", digest, {}, { cron: "30 8 * * 1-5", tz: "Asia/Tokyo" });
    await page.goto(`${dashboard.url}schedules`);
    const cells = page.locator('#schedules tr[data-key="digest:tokyo"] td');
    expect(await cells.nth(2).textContent()).toMatch(/^at 08:30, Monday to Friday30 8 \* \* 1-5$/);
    expect(await cells.nth(3).textContent()).toMatch(/^Asia\/Tokyo/);
    const theirs = DateTime.fromJSDate(scheduled.runAt, { zone: "Asia/Tokyo" });
    expect(theirs.toFormat("HH:mm")).toBe("08:30");
    expect(await cells.nth(4).textContent()).toBe(theirs.toFormat("yyyy-MM-dd HH:mm:ss ZZ"));
    expect(await cells.nth(5).textContent()).toBe(DateTime.fromJSDate(scheduled.runAt, { zone: VIEWER_ZONE }).toFormat("yyyy-MM-dd HH:mm:ss ZZ"));

    await cells.nth(0).locator("a").click();
    await page.waitForURL(/\/schedule\?key=digest%3Atokyo/);
    expect(await page.locator("#next-runs tbody tr").count()).toBe(5);
    expect(await page.locator("#next-runs tbody tr").first().locator("td").first().textContent()).toBe(theirs.toFormat("yyyy-MM-dd HH:mm:ss ZZ"));
  });

  it("escapes every value: a payload, key and error holding markup show as text, and no script of theirs runs", async () => {
    const id = await insertJob({
      task: "evil",
      key: '<script>window.__pwned = "key"</script>',
      payload: { html: '<script>window.__pwned = "payload"</script>' },
      state: "failed",
      finished_at: new Date(),
      last_error: '<img src=x onerror="window.__pwned = \'error\'"><script>window.__pwned = "error"</script>',
      last_error_stack: "</pre><script>window.__pwned = 'stack'</script>",
    });
    await page.goto(`${dashboard.url}jobs/${id}`);
    expect(await page.locator("#payload").textContent()).toBe('{\n  "html": "<script>window.__pwned = \\"payload\\"</script>"\n}');
    expect(await page.locator("#last-error").textContent()).toBe('<img src=x onerror="window.__pwned = \'error\'"><script>window.__pwned = "error"</script>');
    expect(await page.locator("#stack").textContent()).toBe("</pre><script>window.__pwned = 'stack'</script>");
    // One script element: the dashboard's own; no image either.
    expect(await page.locator("script").count()).toBe(1);
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
    await page.goto(`${dashboard.url}jobs?state=failed&task=evil`);
    expect(await page.locator("#jobs code").first().textContent()).toBe('<script>window.__pwned = "key"</script>');
    expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
  });

  it("a cross-site form cannot act: refused, the job unchanged", async () => {
    const id = await insertJob({ task: "later", run_at: new Date(Date.now() + 86_400_000) });
    // Another site (localhost is not 127.0.0.1 to the browser) with a form aimed at the dashboard.
    const target = `${dashboard.url}jobs/${id}/cancel`;
    const evil = createServer((_req, res) => {
      res.setHeader("content-type", "text/html");
      res.end(`<form id="f" method="post" action="${target}"><input name="csrf" value="guess"></form><script>document.getElementById("f").submit()</script>`);
    }).listen(0, "127.0.0.1");
    cleanups.push(() => new Promise((r) => evil.close(r)));
    await new Promise((r) => evil.once("listening", r));
    const response = page.waitForResponse((r) => r.url() === target);
    await page.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
    expect((await response).status()).toBe(403);
    expect(await page.locator("main").textContent()).toMatch(/refused: the request came from another site/);
    expect((await row(id)).state).toBe("pending");

    // Even with the right CSRF token, a request that says it comes from elsewhere is refused.
    await page.goto(`${dashboard.url}jobs/${id}/cancel`);
    const csrf = await page.locator('input[name="csrf"]').getAttribute("value");
    for (const headers of [{ origin: "http://evil.example" }, { "sec-fetch-site": "cross-site" }] as Record<string, string>[]) {
      const refused = await fetch(target, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams({ csrf: csrf! }),
        redirect: "manual",
      });
      expect(refused.status).toBe(403);
    }
    // And without the token, a same-origin post is refused too.
    const noToken = await fetch(target, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "", redirect: "manual" });
    expect(noToken.status).toBe(403);
    expect((await row(id)).state).toBe("pending");
  });

  it("sends a strict Content-Security-Policy and the other security headers", async () => {
    const response = await fetch(dashboard.url);
    expect(response.headers.get("content-security-policy")).toMatch(/^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+';/);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("referrer-policy")).toBe("same-origin");
  });

  it("bad parameters: a 400 page with a clear message, no stack", async () => {
    for (const [query, message] of [
      ["jobs?state=broken", 'state must be one of pending, running, succeeded, failed, cancelled; got "broken"'],
      ["jobs?cursor=bm9wZQ", "cursor: is not a cursor this list gave (pass nextCursor as it came)"],
      ["jobs?order=due&state=failed", "order: due lists pending jobs only: give state pending, or no state"],
      ["jobs/12abc", '"12abc" is not a job id (ids are positive integers)'],
      ["jobs?tz=Mars%2FOlympus", 'tz: "Mars/Olympus" is not a time zone name (such as Europe/Paris or UTC)'],
    ]) {
      const response = await page.goto(`${dashboard.url}${query}`);
      expect(response!.status(), query).toBe(400);
      expect(await page.locator("main .notice").textContent()).toBe(message);
      expect(await page.content()).not.toMatch(/\n\s+at /);
    }
  });
});

describe("read-only and authentication", () => {
  async function serve(handler: ReturnType<typeof createDashboard>): Promise<string> {
    const server: Server = createServer(handler).listen(0, "127.0.0.1");
    cleanups.push(() => new Promise((r) => server.close(r)), () => handler.close());
    await new Promise((r) => server.once("listening", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  it("read-only: no action links or forms; action requests answer 403", async () => {
    const url = await serve(createDashboard({ executor: db.pool, readOnly: true, logger: silent }));
    const id = await insertJob({ task: "later", run_at: new Date(Date.now() + 86_400_000) });
    const failed = await insertJob({ task: "later", state: "failed", finished_at: new Date() });
    await page.goto(`${url}jobs/${failed}`);
    expect(await page.locator("header").textContent()).toContain("read-only");
    expect(await page.locator("[data-action]").count()).toBe(0);
    await page.goto(`${url}jobs/${id}`);
    expect(await page.locator("[data-action]").count()).toBe(0);
    expect(await page.locator("main form").count()).toBe(0);
    await page.goto(`${url}jobs?state=failed`);
    expect(await page.locator("[data-bulk-action]").count()).toBe(0);
    expect((await page.goto(`${url}jobs/${id}/cancel`))!.status()).toBe(403);
    expect((await page.goto(`${url}actions/retry?state=failed`))!.status()).toBe(403);
    const post = await fetch(`${url}jobs/${id}/cancel`, { method: "POST", body: "", redirect: "manual" });
    expect(post.status).toBe(403);
    expect((await row(id)).state).toBe("pending");
  });

  it("beyond loopback: refused without a token; with one, 401 without it and 200 with it", async () => {
    await expect(startDashboard({ executor: db.pool, host: "0.0.0.0", port: 0, logger: silent })).rejects.toThrow(ValidationError);
    await expect(startDashboard({ executor: db.pool, host: "0.0.0.0", port: 0, logger: silent })).rejects.toThrow(
      /^host: refusing to listen on 0\.0\.0\.0 without authentication/,
    );
    const token = "correct horse battery staple";
    const guarded = await startDashboard({ executor: db.pool, host: "0.0.0.0", port: 0, auth: { token }, logger: silent });
    cleanups.push(() => guarded.close());

    const anonymous = await fetch(`${guarded.url}jobs`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="punctual"');
    expect((await fetch(`${guarded.url}jobs`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await fetch(`${guarded.url}jobs`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);

    // In a browser: the sign-in form sets an HttpOnly, SameSite=Strict cookie.
    const fresh = await browser.newContext({ timezoneId: VIEWER_ZONE });
    cleanups.push(() => fresh.close());
    const tab = await fresh.newPage();
    expect((await tab.goto(`${guarded.url}workers`))!.status()).toBe(401);
    await tab.fill("#token", "not it");
    await tab.click("#sign-in");
    await tab.waitForSelector("#login-failed");
    await tab.fill("#token", token);
    await tab.click("#sign-in");
    await tab.waitForURL(/\/workers$/);
    expect(await tab.locator("h1").textContent()).toBe("Workers");
    expect(await tab.locator('#workers tr[data-worker="worker-a:4711:9f2c"] td').nth(1).textContent()).toBe("3");
    const [cookie] = (await fresh.cookies()).filter((c) => c.name === "punctual_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookie!.value).not.toContain(token);
  });

  it("basic authentication: the browser's credentials let it in", async () => {
    const url = await serve(createDashboard({ executor: db.pool, auth: { username: "ops", password: "s3cret" }, logger: silent }));
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe('Basic realm="punctual", charset="UTF-8"');
    const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });
    expect((await fetch(url, { headers: basic("ops", "wrong") })).status).toBe(401);
    expect((await fetch(url, { headers: basic("ops", "s3cret") })).status).toBe(200);
    const withCredentials = await browser.newContext({ httpCredentials: { username: "ops", password: "s3cret" } });
    cleanups.push(() => withCredentials.close());
    const tab = await withCredentials.newPage();
    expect((await tab.goto(url))!.status()).toBe(200);
    expect(await tab.locator("h1").textContent()).toBe("Overview");
  });
});
