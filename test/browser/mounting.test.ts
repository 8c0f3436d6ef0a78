import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve as honoServe, type HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDashboard, type DashboardHandler } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// The dashboard is a plain Node handler: each server mounts it under a sub path, and a
// page and an action (a confirmation GET, then its POST) go through each.
let db: TestDatabase;
let dashboard: DashboardHandler;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dashboard = createDashboard({ executor: db.pool, logger: pino({ level: "silent" }) });
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await dashboard.close();
  await db.drop();
});

function listening(server: Server): Promise<string> {
  return new Promise((resolve) => {
    const done = () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    if (server.listening) done();
    else server.once("listening", done);
  });
}

async function pendingLaterJob(): Promise<number> {
  const { rows } = await db.pool.query(`insert into punctual.jobs (task, run_at) values ('later', now() + interval '1 day') returning id`);
  return Number(rows[0].id);
}

/** The overview, then run-now of a job through its confirmation page's form; returns where the POST redirected. */
async function overviewAndRunNow(origin: string, base: string) {
  const overview = await fetch(`${origin}${base}/`);
  expect(overview.status).toBe(200);
  const page = await overview.text();
  expect(page).toContain("<h1>Overview</h1>");
  // Links carry the mount path.
  expect(page).toContain(`href="${base}/jobs"`);
  expect(overview.headers.get("content-security-policy")).toMatch(/default-src 'none'/);

  const id = await pendingLaterJob();
  const confirm = await fetch(`${origin}${base}/jobs/${id}/run-now`);
  expect(confirm.status).toBe(200);
  const form = await confirm.text();
  const action = /<form method="post" class="confirm" action="([^"]+)"/.exec(form)![1]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(form)![1]!;
  expect(action).toBe(`${base}/jobs/${id}/run-now`);
  const posted = await fetch(`${origin}${action}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ csrf }),
    redirect: "manual",
  });
  expect(posted.status).toBe(303);
  const location = posted.headers.get("location")!;
  expect(location.startsWith(`${base}/jobs/${id}?notice=`)).toBe(true);
  const { rows } = await db.pool.query("select run_at <= now() as due from punctual.jobs where id = $1", [id]);
  expect(rows[0].due).toBe(true);
  const after = await (await fetch(`${origin}${location}`)).text();
  expect(after).toContain(`Job ${id} made due now: now pending.`);
}

describe("mounted in a server", () => {
  it("node:http, at the root and under basePath", async () => {
    const root = createServer(dashboard).listen(0, "127.0.0.1");
    closers.push(() => new Promise((r) => root.close(r)));
    await overviewAndRunNow(await listening(root), "");

    const sub = createDashboard({ executor: db.pool, basePath: "/ops/queue/", logger: pino({ level: "silent" }) });
    const server = createServer((req, res) => sub(req, res, () => {
      res.statusCode = 418;
      res.end("the app's own route");
    })).listen(0, "127.0.0.1");
    closers.push(() => new Promise((r) => server.close(r)));
    const origin = await listening(server);
    await overviewAndRunNow(origin, "/ops/queue");
    // Outside basePath, the request goes on to the app (next).
    expect((await fetch(`${origin}/elsewhere`)).status).toBe(418);
  });

  it("Express, with app.use on a sub path (req.baseUrl), behind a body parser", async () => {
    const app = express();
    app.use(express.urlencoded({ extended: false }));
    app.use("/admin/jobs", dashboard);
    app.get("/", (_req, res) => {
      res.send("home");
    });
    const server = app.listen(0, "127.0.0.1");
    closers.push(() => new Promise((r) => server.close(r)));
    const origin = await listening(server);
    await overviewAndRunNow(origin, "/admin/jobs");
    expect(await (await fetch(`${origin}/`)).text()).toBe("home");
  });

  it("Fastify, through reply.hijack() and the raw request and response", async () => {
    const app = Fastify();
    await app.register(async (scope) => {
      // The dashboard reads its own form bodies: Fastify must leave them unread.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", (_request, _payload, done) => done(null));
      const mounted = createDashboard({ executor: db.pool, basePath: "/dashboard", logger: pino({ level: "silent" }) });
      closers.push(() => mounted.close());
      const handle = (request: { raw: import("node:http").IncomingMessage }, reply: { hijack(): void; raw: import("node:http").ServerResponse }) => {
        reply.hijack();
        mounted(request.raw, reply.raw);
      };
      scope.all("/dashboard", handle);
      scope.all("/dashboard/*", handle);
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    closers.push(() => app.close());
    await overviewAndRunNow(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, "/dashboard");
  });

  it("Hono on @hono/node-server, through c.env.incoming / outgoing", async () => {
    const app = new Hono<{ Bindings: HttpBindings }>();
    const mounted = createDashboard({ executor: db.pool, basePath: "/dashboard", logger: pino({ level: "silent" }) });
    closers.push(() => mounted.close());
    app.all("/dashboard/*", (c) => {
      mounted(c.env.incoming, c.env.outgoing);
      return RESPONSE_ALREADY_SENT;
    });
    app.get("/", (c) => c.text("home"));
    const server = honoServe({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }) as Server;
    closers.push(() => new Promise((r) => server.close(r)));
    const origin = await listening(server);
    await overviewAndRunNow(origin, "/dashboard");
    expect(await (await fetch(`${origin}/`)).text()).toBe("home");
  });
});
