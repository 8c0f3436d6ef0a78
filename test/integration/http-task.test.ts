/**
 * The built-in HTTP task (`punctual.http`) against real HTTP servers on loopback
 * addresses, run by real workers on a real database; and the general handler features
 * it stands on: `storeResult`, `PermanentError`, `RetryAfterError`.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createClient,
  defineTask,
  httpRequest,
  httpTask,
  PermanentError,
  RESULT_MAX_BYTES,
  RetryAfterError,
  ValidationError,
  type HttpResult,
  type Worker,
} from "../../src/index.js";
import { next } from "../support/events.js";
import { captureLogs } from "../support/logs.js";
import { workerHarness } from "../support/worker-harness.js";

const t = workerHarness({ pollIntervalMs: 20, backoff: { baseMs: 1, maxMs: 5 } });

const SECRET = "Bearer s3cr3t-ping-token-4f9a1c";
const SECRET_TOKEN = "s3cr3t-ping-token-4f9a1c";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A real HTTP server on a loopback address; each test sets `route`, and reads what it was sent. */
interface TestServer {
  origin: string;
  requests: Seen[];
  route: (req: Seen, res: http.ServerResponse, count: number) => void;
  close(): Promise<void>;
}

async function startServer(host: string): Promise<TestServer> {
  const state: TestServer = {
    origin: "",
    requests: [],
    route: (_req, res) => res.end("ok"),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() };
      state.requests.push(seen);
      state.route(seen, res, state.requests.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  state.origin = `http://${host}:${(server.address() as AddressInfo).port}`;
  return state;
}

let server: TestServer;
/** Another origin, for redirects: allowed by `local` as well. */
let other: TestServer;
/** On 127.0.0.1, which `local` does not allow: the target of refused redirects. */
let forbidden: TestServer;

/** The HTTP task as a worker configured for the test servers: 127.0.0.2 and .3 allowed, one secret. */
const local = httpTask({
  allowedNetworks: ["127.0.0.2/32", "127.0.0.3"],
  secrets: { PING_TOKEN: SECRET },
});

beforeAll(async () => {
  server = await startServer("127.0.0.2");
  other = await startServer("127.0.0.3");
  forbidden = await startServer("127.0.0.1");
});
afterEach(() => {
  for (const s of [server, other, forbidden]) {
    s.requests.length = 0;
    s.route = (_req, res) => res.end("ok");
  }
});
afterAll(async () => {
  await Promise.all([server, other, forbidden].map((s) => s.close()));
});

async function row(id: number) {
  const { rows } = await t.db.pool.query(
    `select state, attempts, last_error, last_error_stack, result, run_at, updated_at,
            extract(epoch from run_at - updated_at) * 1000 as retry_in_ms, j::text as whole
     from punctual.jobs as j where id = $1`,
    [id],
  );
  return rows[0] as {
    state: string;
    attempts: number;
    last_error: string | null;
    result: HttpResult & Record<string, unknown>;
    retry_in_ms: string;
    whole: string;
  };
}

/** Starts a worker with `tasks`, and waits for job `id` to end (succeeded or failed). */
async function runToEnd(id: number, worker: Worker) {
  const ended = Promise.race([
    next(worker, "job:succeeded", (job) => job.id === id).then(() => "succeeded"),
    next(worker, "job:failed", (job) => job.id === id).then(([, { error }]) => `failed: ${error.message}`),
  ]);
  return ended;
}

describe("punctual.http: outcomes", () => {
  it("a success stores status, duration, some headers and the body excerpt in result", async () => {
    server.route = (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.setHeader("set-cookie", "session=abc");
      res.end('{"pong":true}');
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/ping?x=1` });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    const job = await row(id);
    expect(job).toMatchObject({ state: "succeeded", attempts: 1, last_error: null });
    expect(job.result).toMatchObject({
      method: "GET",
      url: `${server.origin}/ping?x=1`,
      status: 200,
      ok: true,
      body: '{"pong":true}',
      headers: { "content-type": "application/json", "content-length": "13" },
    });
    expect(job.result.durationMs).toBeGreaterThanOrEqual(0);
    expect(job.result.headers).not.toHaveProperty("set-cookie");
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ method: "GET", url: "/ping?x=1", headers: { "user-agent": "punctual" } });
  });

  it("sends the method, headers and a JSON body", async () => {
    const { id } = await t.punctual.enqueue(local, {
      method: "POST",
      url: `${server.origin}/hook`,
      headers: { "X-Source": "punctual-test" },
      body: { event: "tick", n: 1 },
    });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    expect(server.requests[0]).toMatchObject({
      method: "POST",
      headers: { "x-source": "punctual-test", "content-type": "application/json" },
    });
    expect(JSON.parse(server.requests[0]!.body)).toEqual({ event: "tick", n: 1 });
  });

  it("500 then 200: retried with backoff, succeeds on attempt 2, and result is the last attempt's", async () => {
    server.route = (_req, res, count) => {
      res.statusCode = count === 1 ? 500 : 200;
      res.end(count === 1 ? "broken" : "fine");
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/flaky` });
    const worker = t.startWorker({ tasks: [local] });
    const retried = next(worker, "job:retried", (job) => job.id === id);
    expect(await runToEnd(id, worker)).toBe("succeeded");
    expect((await retried)[1].error.message).toBe(`GET ${server.origin}/flaky: 500 Internal Server Error`);
    const job = await row(id);
    expect(job).toMatchObject({ state: "succeeded", attempts: 2, last_error: `GET ${server.origin}/flaky: 500 Internal Server Error` });
    expect(job.result).toMatchObject({ status: 200, ok: true, body: "fine" });
  });

  it("408 is retried too (the server timed out waiting for the request)", async () => {
    server.route = (_req, res, count) => {
      res.statusCode = count === 1 ? 408 : 204;
      res.end();
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/slow-client` });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    expect(await row(id)).toMatchObject({ attempts: 2, result: { status: 204, ok: true } });
  });

  it("429 with Retry-After: 2 sets the next attempt 2 s after the failure, and keeps the failure's result", async () => {
    server.route = (_req, res) => {
      res.statusCode = 429;
      res.setHeader("retry-after", "2");
      res.end("slow down");
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/limited` });
    const worker = t.startWorker({ tasks: [local] });
    const [, retried] = await next(worker, "job:retried", (job) => job.id === id);
    expect(retried.error.message).toBe(`GET ${server.origin}/limited: 429 Too Many Requests (Retry-After: next attempt in 2000 ms)`);
    const job = await row(id);
    expect(job.state).toBe("pending");
    // run_at and updated_at come from the same statement's now(): exactly the delay apart.
    expect(Number(job.retry_in_ms)).toBe(2000);
    expect(job.result).toMatchObject({ status: 429, ok: false, body: "slow down", retryAfterMs: 2000, headers: { "retry-after": "2" } });
  });

  it("Retry-After as an HTTP date, measured against the response's Date header", async () => {
    const date = new Date("2030-01-01T00:00:00Z");
    server.route = (_req, res) => {
      res.statusCode = 503;
      res.setHeader("date", date.toUTCString());
      res.setHeader("retry-after", new Date(date.getTime() + 7_000).toUTCString());
      res.end();
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/maintenance` });
    const worker = t.startWorker({ tasks: [local] });
    await next(worker, "job:retried", (job) => job.id === id);
    expect(Number((await row(id)).retry_in_ms)).toBe(7000);
  });

  it("404 fails at once: one attempt, no retry, the status in result", async () => {
    server.route = (_req, res) => {
      res.statusCode = 404;
      res.end("no such thing");
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/missing` });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe(`failed: GET ${server.origin}/missing: 404 Not Found (not retried: only 408, 429 and 5xx are)`);
    const job = await row(id);
    expect(job).toMatchObject({ state: "failed", attempts: 1 });
    expect(job.result).toMatchObject({ status: 404, ok: false, body: "no such thing" });
    expect(server.requests).toHaveLength(1);
  });

  it("successStatuses: a 404 the job names as success succeeds; a 200 it does not name fails", async () => {
    server.route = (req, res) => {
      res.statusCode = req.url === "/gone" ? 404 : 200;
      res.end();
    };
    const gone = await t.punctual.enqueue(local, { url: `${server.origin}/gone`, successStatuses: ["2xx", 404] });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(gone.id, worker)).toBe("succeeded");
    const strict = await t.punctual.enqueue(local, { url: `${server.origin}/here`, successStatuses: ["201-204"] });
    expect(await runToEnd(strict.id, worker)).toMatch(/^failed: GET .*\/here: 200 OK \(not retried/);
  });

  it("a timeout (no response in timeoutMs) is retried", async () => {
    server.route = (_req, res, count) => {
      if (count === 1) return; // never answers; the task gives up after timeoutMs
      res.end("late but fine");
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/hang`, timeoutMs: 200 });
    const worker = t.startWorker({ tasks: [local] });
    const retried = next(worker, "job:retried", (job) => job.id === id);
    expect(await runToEnd(id, worker)).toBe("succeeded");
    expect((await retried)[1].error.message).toBe(`GET ${server.origin}/hang: no complete response within 200 ms (timeoutMs)`);
    expect(await row(id)).toMatchObject({ attempts: 2, result: { status: 200, body: "late but fine" } });
  });

  it("a connection refused is retried, then fails when no attempt is left", async () => {
    const closed = await startServer("127.0.0.2");
    const url = `${closed.origin}/`;
    await closed.close();
    const { id } = await t.punctual.enqueue(local, { url }, { maxAttempts: 2 });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toMatch(/^failed: GET http:\/\/127\.0\.0\.2:\d+\/: connect ECONNREFUSED/);
    const job = await row(id);
    expect(job).toMatchObject({ state: "failed", attempts: 2 });
    expect(job.result.error).toMatch(/ECONNREFUSED/);
    expect(job.result).not.toHaveProperty("status");
  });

  it("a body over maxResponseBytes is cut on a character boundary, and result says so", async () => {
    server.route = (_req, res) => res.end("é".repeat(10_000));
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/big`, maxResponseBytes: 101 });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    const { result } = await row(id);
    expect(result.body).toBe("é".repeat(50));
    expect(result.bodyTruncated).toBe(true);
    expect(result.headers).toMatchObject({ "content-length": "20000" });
  });

  it("a HEAD request keeps no body; maxResponseBytes 0 keeps none either", async () => {
    server.route = (_req, res) => res.end("body");
    const head = await t.punctual.enqueue(local, { method: "HEAD", url: `${server.origin}/h` });
    const none = await t.punctual.enqueue(local, { url: `${server.origin}/n`, maxResponseBytes: 0 });
    const worker = t.startWorker({ tasks: [local] });
    await Promise.all([runToEnd(head.id, worker), runToEnd(none.id, worker)]);
    expect((await row(head.id)).result).not.toHaveProperty("body");
    expect((await row(none.id)).result).toMatchObject({ bodyTruncated: true });
    expect((await row(none.id)).result).not.toHaveProperty("body");
  });
});

describe("punctual.http: safe by default", () => {
  const refused = [
    ["127.0.0.1", () => `${forbidden.origin}/`, /127\.0\.0\.1 is loopback/],
    ["localhost", () => forbidden.origin.replace("127.0.0.1", "localhost") + "/", /localhost resolves to .*\(loopback\)/],
    ["[::1]", () => forbidden.origin.replace("127.0.0.1", "[::1]") + "/", /::1 is loopback/],
    ["127.0.0.1 in another spelling (2130706433)", () => forbidden.origin.replace("127.0.0.1", "2130706433") + "/", /127\.0\.0\.1 is loopback/],
    ["IPv4-mapped IPv6 loopback", () => forbidden.origin.replace("127.0.0.1", "[::ffff:127.0.0.1]") + "/", /127\.0\.0\.1 is loopback/],
    ["the metadata service", () => "http://169.254.169.254/latest/meta-data/", /169\.254\.169\.254 is a cloud metadata service/],
    ["a private network", () => "http://10.0.0.1/", /10\.0\.0\.1 is a private network/],
    ["the unspecified address", () => "http://0.0.0.0:1/", /0\.0\.0\.0 is the unspecified address/],
  ] as const;

  it.each(refused)("the default task (httpRequest) refuses %s: failed after one attempt, nothing sent", async (_name, url, reason) => {
    const { id } = await t.punctual.enqueue(httpRequest, { url: url() });
    const worker = t.startWorker({ tasks: [httpRequest] });
    const outcome = await runToEnd(id, worker);
    expect(outcome).toMatch(reason);
    expect(outcome).toMatch(/: refused: .*this worker does not connect there/);
    const job = await row(id);
    expect(job).toMatchObject({ state: "failed", attempts: 1 });
    expect(job.result).toMatchObject({ ok: false, error: expect.stringMatching(reason) });
    expect(forbidden.requests).toHaveLength(0);
  });

  it("refuses a host name that resolves to a loopback address (checked on the resolved address)", async () => {
    const task = httpTask({
      lookup: async (hostname) => (hostname === "internal.example" ? [{ address: "127.0.0.1", family: 4 }] : []),
    });
    const port = new URL(forbidden.origin).port;
    const { id } = await t.punctual.enqueue(task, { url: `http://internal.example:${port}/` });
    const worker = t.startWorker({ tasks: [task] });
    expect(await runToEnd(id, worker)).toMatch(/refused: internal\.example resolves to 127\.0\.0\.1 \(loopback\): this worker does not connect there/);
    expect(forbidden.requests).toHaveLength(0);
  });

  it("connects to the allowed address when a name resolves to a refused one and an allowed one", async () => {
    const task = httpTask({
      allowedNetworks: ["127.0.0.2/32"],
      lookup: async () => [
        { address: "127.0.0.1", family: 4 },
        { address: "127.0.0.2", family: 4 },
      ],
    });
    const port = new URL(server.origin).port;
    const { id } = await t.punctual.enqueue(task, { url: `http://two-faced.example:${port}/` });
    const worker = t.startWorker({ tasks: [task] });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    expect(server.requests).toHaveLength(1);
  });

  it("allowPrivateNetworks allows loopback, and still refuses the metadata service", async () => {
    const task = httpTask({ allowPrivateNetworks: true });
    const ok = await t.punctual.enqueue(task, { url: `${forbidden.origin}/` });
    const worker = t.startWorker({ tasks: [task] });
    expect(await runToEnd(ok.id, worker)).toBe("succeeded");
    const metadata = await t.punctual.enqueue(task, { url: "http://169.254.169.254/latest/meta-data/" });
    expect(await runToEnd(metadata.id, worker)).toMatch(/169\.254\.169\.254 is a cloud metadata service: .*allowedNetworks/);
  });

  it("a redirect to a refused address is refused: nothing reaches it", async () => {
    server.route = (_req, res) => {
      res.statusCode = 302;
      res.setHeader("location", `${forbidden.origin}/internal`);
      res.end();
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/out` });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe(
      `failed: GET ${forbidden.origin}/internal: refused: 127.0.0.1 is loopback: this worker does not connect there (allow it with allowPrivateNetworks or allowedNetworks)`,
    );
    const job = await row(id);
    expect(job).toMatchObject({ state: "failed", attempts: 1, result: { redirects: [`${forbidden.origin}/internal`] } });
    expect(forbidden.requests).toHaveLength(0);
  });

  it("a redirect to localhost is refused as well", async () => {
    server.route = (_req, res) => {
      res.statusCode = 307;
      res.setHeader("location", forbidden.origin.replace("127.0.0.1", "localhost"));
      res.end();
    };
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/out` });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toMatch(/refused: localhost resolves to .*\(loopback\)/);
    expect(forbidden.requests).toHaveLength(0);
  });
});

describe("punctual.http: redirects", () => {
  it("follows a redirect on the same origin with the secret headers, and to another origin without them", async () => {
    server.route = (req, res) => {
      if (req.url === "/start") {
        res.statusCode = 301;
        res.setHeader("location", "/moved");
      } else {
        res.statusCode = 303;
        res.setHeader("location", `${other.origin}/elsewhere`);
      }
      res.end();
    };
    const { id } = await t.punctual.enqueue(local, {
      method: "POST",
      url: `${server.origin}/start`,
      body: "hello",
      headers: { Authorization: "Basic plain-credentials", "X-Trace": "1" },
      secretHeaders: { "X-Api-Key": "PING_TOKEN" },
    });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    // 301 after a POST is a GET without the body, as fetch does; then 303: a GET.
    expect(server.requests.map((r) => [r.method, r.url, r.headers["x-api-key"], r.body])).toEqual([
      ["POST", "/start", SECRET, "hello"],
      ["GET", "/moved", SECRET, ""],
    ]);
    const [elsewhere] = other.requests;
    expect(elsewhere).toMatchObject({ method: "GET", url: "/elsewhere", headers: { "x-trace": "1" } });
    expect(elsewhere!.headers).not.toHaveProperty("x-api-key");
    expect(elsewhere!.headers).not.toHaveProperty("authorization");
    expect((await row(id)).result).toMatchObject({
      status: 200,
      url: `${other.origin}/elsewhere`,
      redirects: [`${server.origin}/moved`, `${other.origin}/elsewhere`],
    });
  });

  it("fails without retry past maxRedirects; with maxRedirects 0 the 3xx is the answer", async () => {
    server.route = (_req, res) => {
      res.statusCode = 302;
      res.setHeader("location", "/again");
      res.end();
    };
    const loop = await t.punctual.enqueue(local, { url: `${server.origin}/loop`, maxRedirects: 2 });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(loop.id, worker)).toMatch(/more than 2 redirects \(maxRedirects\)$/);
    expect(server.requests).toHaveLength(3);
    const kept = await t.punctual.enqueue(local, { url: `${server.origin}/once`, maxRedirects: 0, successStatuses: ["2xx", "3xx"] });
    expect(await runToEnd(kept.id, worker)).toBe("succeeded");
    expect((await row(kept.id)).result).toMatchObject({ status: 302, headers: { location: "/again" } });
  });
});

describe("punctual.http: secret headers", () => {
  it("reach the server, and appear nowhere in the row, the logs or result, even when the server echoes them", async () => {
    server.route = (req, res, count) => {
      // Echo the credentials back in a header and the body, failing once.
      res.statusCode = count === 1 ? 503 : 200;
      res.setHeader("x-request-id", String(req.headers.authorization));
      res.end(`you sent ${req.headers.authorization} and token ${SECRET_TOKEN}`);
    };
    const logs = captureLogs();
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/echo`, secretHeaders: { Authorization: "PING_TOKEN" } });
    const worker = t.startWorker({ tasks: [local], logger: logs.logger });
    expect(await runToEnd(id, worker)).toBe("succeeded");
    expect(server.requests.map((r) => r.headers.authorization)).toEqual([SECRET, SECRET]);
    const job = await row(id);
    expect(job.whole).toContain("PING_TOKEN"); // the payload names the secret; its value is nowhere
    expect(job.whole).not.toContain(SECRET_TOKEN);
    expect(job.result.body).toBe("you sent [secret PING_TOKEN] and token [secret PING_TOKEN]");
    expect(job.result.headers!["x-request-id"]).toBe("[secret PING_TOKEN]");
    const logText = JSON.stringify(logs.lines);
    expect(logText).toContain("503"); // the retry was logged, with its result
    expect(logText).not.toContain(SECRET_TOKEN);
  });

  it("a secret the worker does not hold fails the attempt, naming the secret", async () => {
    const { id } = await t.punctual.enqueue(local, { url: `${server.origin}/`, secretHeaders: { "X-Key": "NOT_THERE" } }, { maxAttempts: 1 });
    const worker = t.startWorker({ tasks: [local] });
    expect(await runToEnd(id, worker)).toBe(
      "failed: secret NOT_THERE (for header X-Key) is not configured on this worker: give it in httpTask({ secrets })",
    );
    expect(server.requests).toHaveLength(0);
  });
});

describe("punctual.http from SQL", () => {
  it("a schedule written by punctual.schedule runs the request", async () => {
    server.route = (_req, res) => res.end("scheduled pong");
    await t.db.pool.query(
      `select punctual.schedule('ping', 'punctual.http', jsonb_build_object('url', $1::text, 'method', 'POST'), every => interval '100 milliseconds')`,
      [`${server.origin}/from-sql`],
    );
    const worker = t.startWorker({ tasks: [local] });
    const [placed] = await next(worker, "job:placed");
    const [succeeded] = await next(worker, "job:succeeded");
    expect(succeeded.key).toBe("ping");
    expect(succeeded.id).toBe(placed.id);
    expect(server.requests[0]).toMatchObject({ method: "POST", url: "/from-sql" });
    expect((await row(succeeded.id)).result).toMatchObject({ status: 200, body: "scheduled pong" });
    // The schedule goes on: its next occurrence is pending.
    const { rows } = await t.db.pool.query("select count(*)::int as n from punctual.jobs where key = 'ping' and state in ('pending', 'running')");
    expect(rows[0].n).toBe(1);
    await t.punctual.cancel("ping");
  });

  it.each([
    ["an ftp:// URL", { url: "ftp://example.com/file" }, "payload.url: must be an http:// or https:// URL, not ftp:"],
    ["a bad method", { url: "https://example.com", method: "FETCH" }, "payload.method: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (upper case)"],
    ["no url", { method: "GET" }, "payload.url: must be a URL string"],
    ["a typo", { url: "https://example.com", header: {} }, 'payload.header: Unrecognized key: "header"'],
  ])("a payload with %s written by SQL fails at run time without retry", async (_name, payload, message) => {
    const { rows } = await t.db.pool.query("select punctual.enqueue('punctual.http', $1::jsonb) as id", [JSON.stringify(payload)]);
    const id = Number(rows[0].id);
    const worker = t.startWorker({ tasks: [local] });
    const outcome = await runToEnd(id, worker);
    expect(outcome).toContain(message.split(": ")[0]!);
    expect(outcome).toContain(message.slice(message.indexOf(": ") + 2));
    expect(await row(id)).toMatchObject({ state: "failed", attempts: 1 });
  });
});

describe("punctual.http payloads are checked at enqueue", () => {
  it.each([
    ["an ftp:// URL", { url: "ftp://example.com/file" }, "payload.url", "must be an http:// or https:// URL, not ftp:"],
    ["a bad method", { url: "https://example.com", method: "FETCH" }, "payload.method", "must be one of GET"],
    ["no url", {}, "payload.url", "must be a URL string"],
    ["credentials in the URL", { url: "https://user:pw@example.com" }, "payload.url", "cannot carry a user name or password"],
    ["a body on GET", { url: "https://example.com", body: "x" }, "payload.body", "a GET request cannot have a body"],
    ["a header twice", { url: "https://example.com", headers: { "X-A": "1" }, secretHeaders: { "x-a": "S" } }, "payload.secretHeaders.x-a", "given twice"],
    ["a reserved header", { url: "https://example.com", headers: { Host: "evil.example" } }, "payload.headers.Host", "set by the HTTP task itself"],
    ["a header with a line break", { url: "https://example.com", headers: { "X-A": "1\r\nX-B: 2" } }, "payload.headers.X-A", "cannot hold CR, LF or NUL"],
    ["a bad status", { url: "https://example.com", successStatuses: ["2xx", 700] }, "payload.successStatuses.1", "a status is a code"],
    ["a timeout too long", { url: "https://example.com", timeoutMs: 3_600_000 }, "payload.timeoutMs", ""],
    ["an excerpt too large", { url: "https://example.com", maxResponseBytes: 100_000 }, "payload.maxResponseBytes", ""],
  ])("refuses %s with a ValidationError naming the field; nothing is written", async (_name, payload, field, message) => {
    const error = await t.punctual.enqueue(httpRequest, payload as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    expect((error as ValidationError).message).toContain(message);
    const { rows } = await t.db.pool.query("select count(*)::int as n from punctual.jobs");
    expect(rows[0].n).toBe(0);
  });

  it("enqueues by name through a client that knows the task, and with any configured copy of it", async () => {
    const client = createClient({ executor: t.db.pool, tasks: [httpRequest] });
    const byName = await client.enqueue("punctual.http", { url: "https://example.com/a" });
    const byCopy = await t.punctual.enqueue(local, { url: "https://example.com/b" });
    const { rows } = await t.db.pool.query("select task, payload from punctual.jobs where id = any($1) order by id", [[byName.id, byCopy.id]]);
    expect(rows).toEqual([
      { task: "punctual.http", payload: { url: "https://example.com/a" } },
      { task: "punctual.http", payload: { url: "https://example.com/b" } },
    ]);
  });
});

describe("handler outcomes any task can steer", () => {
  it("storeResult: the return value is kept in result; without it, nothing is", async () => {
    const kept = defineTask({ name: "kept", payload: z.object({}), storeResult: true, run: () => ({ rows: 3, note: "done" }) });
    const dropped = defineTask({ name: "dropped", payload: z.object({}), run: () => ({ rows: 3 }) });
    const a = await t.punctual.enqueue(kept, {});
    const b = await t.punctual.enqueue(dropped, {});
    const worker = t.startWorker({ tasks: [kept, dropped] });
    await Promise.all([runToEnd(a.id, worker), runToEnd(b.id, worker)]);
    expect((await row(a.id)).result).toEqual({ rows: 3, note: "done" });
    expect((await row(b.id)).result).toBeNull();
  });

  it("a result over RESULT_MAX_BYTES is kept as a note; one JSON cannot carry, as another", async () => {
    const big = defineTask({ name: "big", payload: z.object({ kind: z.string() }), storeResult: true, run: ({ kind }) => (kind === "big" ? { text: "x".repeat(RESULT_MAX_BYTES) } : { n: 1n }) });
    const a = await t.punctual.enqueue(big, { kind: "big" });
    const b = await t.punctual.enqueue(big, { kind: "bigint" });
    const worker = t.startWorker({ tasks: [big] });
    expect(await Promise.all([runToEnd(a.id, worker), runToEnd(b.id, worker)])).toEqual(["succeeded", "succeeded"]);
    const note = (await row(a.id)).result as unknown as { truncated: boolean; bytes: number; preview: string };
    expect(note).toMatchObject({ truncated: true, bytes: RESULT_MAX_BYTES + 11 });
    expect(note.preview.startsWith('{"text":"xxx')).toBe(true);
    expect((await row(b.id)).result).toEqual({ unstorable: "result.n: a BigInt is not representable in JSON; pass a string or number" });
  });

  it("PermanentError fails the job at once, with its result; RetryAfterError sets the next run_at", async () => {
    const steer = defineTask({
      name: "steer",
      payload: z.object({ how: z.enum(["permanent", "later"]) }),
      storeResult: true,
      run: ({ how }) => {
        if (how === "permanent") throw new PermanentError("the account is closed", { result: { account: "closed" } });
        throw new RetryAfterError("quota exhausted", 3_000);
      },
    });
    const permanent = await t.punctual.enqueue(steer, { how: "permanent" });
    const later = await t.punctual.enqueue(steer, { how: "later" });
    const worker = t.startWorker({ tasks: [steer] });
    const retried = next(worker, "job:retried", (job) => job.id === later.id);
    expect(await runToEnd(permanent.id, worker)).toBe("failed: the account is closed");
    expect(await row(permanent.id)).toMatchObject({ state: "failed", attempts: 1, result: { account: "closed" } });
    await retried;
    const laterRow = await row(later.id);
    expect(laterRow).toMatchObject({ state: "pending", attempts: 1, result: null });
    expect(Number(laterRow.retry_in_ms)).toBe(3000);
  });

  it("an error from elsewhere steers the same way by its properties (permanent, retryAfterMs)", async () => {
    class QuotaError extends Error {
      retryAfterMs = 4_500;
    }
    const foreign = defineTask({
      name: "foreign",
      payload: z.object({ how: z.string() }),
      run: ({ how }) => {
        if (how === "permanent") throw Object.assign(new Error("gone for good"), { permanent: true });
        throw new QuotaError("over quota");
      },
    });
    const permanent = await t.punctual.enqueue(foreign, { how: "permanent" });
    const later = await t.punctual.enqueue(foreign, { how: "later" });
    const worker = t.startWorker({ tasks: [foreign] });
    const retried = next(worker, "job:retried", (job) => job.id === later.id);
    expect(await runToEnd(permanent.id, worker)).toBe("failed: gone for good");
    await retried;
    expect(Number((await row(later.id)).retry_in_ms)).toBe(4500);
  });
});
