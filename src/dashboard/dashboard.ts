/**
 * The dashboard as a plain Node request handler: `(req, res, next?)`, for `node:http`,
 * Express, Fastify (raw request and response) and Hono (@hono/node-server's incoming
 * and outgoing). It reads `punctual.jobs` through `src/ops/` and acts through the same
 * functions as the CLI; it keeps no state but a per-process secret for its forms.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import pg from "pg";
import { z } from "zod";
import { CLIENT_QUERY_TIMEOUT_MS, isConnectionError, withConnectionDefaults } from "../connection.js";
import { ValidationError } from "../errors.js";
import type { Executor } from "../executor.js";
import { createLogger, type Logger } from "../logger.js";
import { zodError } from "../tasks.js";
import { ZONE_COOKIE } from "./assets.js";
import { HttpError, readForm, securityHeaders, sendHtml, type Notice, type RequestContext } from "./context.js";
import { isZone } from "./format.js";
import { errorPage } from "./layout.js";
import { bulkActionPage, bulkActionPost, jobActionPage, jobActionPost } from "./pages/actions.js";
import { jobPage, jobsPage } from "./pages/jobs.js";
import { loginPage, loginPost, logoutPost } from "./pages/login.js";
import { overviewPage } from "./pages/overview.js";
import { schedulePage, schedulesPage } from "./pages/schedules.js";
import { workersPage } from "./pages/workers.js";
import { badParameter, jobIdParam } from "./params.js";
import { crossSiteReason, Guard, readCookie, type DashboardAuth, type Identity } from "./security.js";

/** Options of `createDashboard` (and `startDashboard`). */
export interface DashboardOptions {
  /** Where it reads and acts: a pg Pool (or any executor Punctual takes). The dashboard does not end it. Or: */
  executor?: Executor;
  /** a connection string: the dashboard makes a small pool of its own, ended by `close()`. */
  connectionString?: string;
  /**
   * The path it is served under (`/dashboard`), when the request's URL still carries it
   * (node:http, Fastify, Hono). Under Express's `app.use("/dashboard", ...)` it is not
   * needed: `req.baseUrl` says it. Default: the root.
   */
  basePath?: string;
  /** No action links or forms; action requests answer 403. Default false. */
  readOnly?: boolean;
  /** Token and/or basic authentication. Without it, anyone who reaches the handler sees it. */
  auth?: DashboardAuth;
  /** Default pino logger named "punctual-dashboard". */
  logger?: Logger;
}

/** The request handler, with `close()` to end the pool it made (with `connectionString`). */
export type DashboardHandler = ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void) & {
  close(): Promise<void>;
};

const optionsSchema = z.object({
  basePath: z
    .string()
    .regex(/^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*\/?$/, 'must be a path such as "/dashboard"')
    .transform((p) => p.replace(/\/+$/, ""))
    .default(""),
  readOnly: z.boolean().default(false),
  auth: z
    .strictObject({
      token: z.string().min(1, "must not be empty").optional(),
      username: z.string().min(1, "must not be empty").regex(/^[^:]*$/, "must not contain a colon").optional(),
      password: z.string().min(1, "must not be empty").optional(),
    })
    .refine((a) => (a.username === undefined) === (a.password === undefined), "give both username and password, or neither")
    .refine((a) => a.token !== undefined || a.username !== undefined, "give a token, or a username and password")
    .optional(),
});

/**
 * Makes the dashboard's request handler. Give `executor` (a pg Pool) or
 * `connectionString`. Unknown paths under it answer 404; a request outside `basePath`
 * goes to `next` when there is one (else 404).
 *
 * @example
 * import http from "node:http";
 * const dashboard = createDashboard({ executor: pool, auth: { token: process.env.DASHBOARD_TOKEN } });
 * http.createServer(dashboard).listen(4000, "127.0.0.1");
 * // Express: app.use("/dashboard", dashboard)
 */
export function createDashboard(options: DashboardOptions): DashboardHandler {
  const parsed = optionsSchema.safeParse({ basePath: options.basePath, readOnly: options.readOnly, auth: options.auth });
  if (!parsed.success) throw zodError("", parsed.error);
  const { basePath, readOnly, auth } = parsed.data;
  if ((options.executor === undefined) === (options.connectionString === undefined)) {
    throw new ValidationError("executor", "give executor (a pg Pool) or connectionString, one of them");
  }
  const ownPool = options.connectionString
    ? new pg.Pool({
        ...withConnectionDefaults({ connectionString: options.connectionString }),
        max: 4,
        query_timeout: CLIENT_QUERY_TIMEOUT_MS,
        // A page that runs long holds nobody else's work, but must not run for ever.
        statement_timeout: 30_000,
      })
    : undefined;
  ownPool?.on("error", () => {}); // an idle connection dropped: the next query says so
  const db = (ownPool ?? options.executor)!;
  const logger = options.logger ?? createLogger("punctual-dashboard");
  const guard = new Guard(auth);

  const handler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => {
    const located = locate(req, basePath);
    if (!located) {
      if (next) return next();
      res.statusCode = 404;
      res.end();
      return;
    }
    securityHeaders(res);
    const identity = guard.identify(req);
    const ctx = contextOf(req, res, located, identity, { db, guard, readOnly });
    serve(ctx, identity !== null).catch((error: unknown) => {
      const [status, message, headers] = describe(error);
      if (status >= 500) logger.error({ err: error, method: ctx.method, path: ctx.path }, "dashboard request failed");
      if (res.headersSent) {
        res.end();
        return;
      }
      sendHtml(res, status, errorPage(ctx, status, message), headers);
    });
  };
  return Object.assign(handler, {
    async close() {
      await ownPool?.end();
    },
  });
}

/**
 * Where the request sits: the mount path its links start with, and the path below it;
 * null when it is outside `basePath`. Express strips its mount path from `req.url` and
 * keeps it in `req.baseUrl`; other servers leave the whole path in `req.url`.
 */
function locate(req: IncomingMessage, basePath: string): { base: string; path: string; search: string } | null {
  const url = req.url ?? "/";
  const mounted = (req as { baseUrl?: unknown }).baseUrl;
  const full = `${typeof mounted === "string" ? mounted : ""}${url}`;
  const q = full.indexOf("?");
  const pathname = q < 0 ? full : full.slice(0, q);
  const search = q < 0 ? "" : full.slice(q);
  let base = typeof mounted === "string" ? mounted : "";
  if (basePath) {
    if (pathname !== basePath && !pathname.startsWith(`${basePath}/`)) return null;
    base = basePath;
  }
  return { base, path: pathname.slice(base.length) || "/", search };
}

function contextOf(
  req: IncomingMessage,
  res: ServerResponse,
  { base, path, search }: { base: string; path: string; search: string },
  identified: Identity | null,
  shared: { db: Executor; guard: Guard; readOnly: boolean },
): RequestContext {
  const query = new URLSearchParams(search);
  const fromQuery = query.get("tz");
  const fromCookie = readCookie(req, ZONE_COOKIE);
  let zone = "UTC";
  let zoneSource: RequestContext["zoneSource"] = "default";
  if (fromQuery && isZone(fromQuery)) [zone, zoneSource] = [fromQuery, "query"];
  else if (fromCookie && isZone(fromCookie)) [zone, zoneSource] = [fromCookie, "cookie"];
  // Unauthenticated requests get as far as the sign-in form, which needs a CSRF token too.
  const identity = identified ?? { kind: "anonymous" as const };
  return {
    req,
    res,
    base,
    path: path.replace(/\/+$/, "") || "/",
    query,
    method: req.method ?? "GET",
    db: shared.db,
    guard: shared.guard,
    identity,
    csrf: shared.guard.csrfToken(identity),
    readOnly: shared.readOnly,
    zone,
    zoneSource,
    notice: readNotice(shared.guard, query.get("notice")),
  };
}

function readNotice(guard: Guard, value: string | null): Notice | null {
  if (!value) return null;
  const text = guard.unsign(value);
  if (text === null) return null;
  try {
    const notice = JSON.parse(text) as Notice;
    return typeof notice.text === "string" ? { text: notice.text, bad: notice.bad === true } : null;
  } catch {
    return null;
  }
}

const JOB_PATH = /^\/jobs\/([^/]+)$/;
const JOB_ACTION_PATH = /^\/jobs\/([^/]+)\/([a-z-]+)$/;
const BULK_ACTION_PATH = /^\/actions\/([a-z-]+)$/;

/** Routes one request; throws `HttpError` for what it refuses. */
async function serve(ctx: RequestContext, authenticated: boolean): Promise<void> {
  const { method, path } = ctx;
  const get = method === "GET" || method === "HEAD";
  if (!get && method !== "POST") throw new HttpError(405, `${method} is not served here`, { Allow: "GET, HEAD, POST" });
  const tz = ctx.query.get("tz");
  if (tz && !isZone(tz)) throw new HttpError(400, `tz: "${tz}" is not a time zone name (such as Europe/Paris or UTC)`);

  if (path === "/login") {
    if (get) return sendHtml(ctx.res, 200, loginPage(ctx, { next: ctx.query.get("next") ?? `${ctx.base}/` }));
    const form = await postedForm(ctx);
    const failed = loginPost(ctx, form);
    if (failed !== null) sendHtml(ctx.res, 401, failed);
    return;
  }
  if (!authenticated) return refuseUnauthenticated(ctx);

  if (!get) {
    await postedForm(ctx);
    if (path === "/logout") return logoutPost(ctx);
    const single = JOB_ACTION_PATH.exec(path);
    if (single) return jobActionPost(ctx, jobIdParam(single[1]!), single[2]!);
    const bulk = BULK_ACTION_PATH.exec(path);
    if (bulk) return bulkActionPost(ctx, bulk[1]!);
    throw new HttpError(404, `nothing to post to at ${path}`);
  }

  let body: string;
  const job = JOB_PATH.exec(path);
  const single = JOB_ACTION_PATH.exec(path);
  const bulk = BULK_ACTION_PATH.exec(path);
  if (path === "/") body = await overviewPage(ctx);
  else if (path === "/jobs") body = await jobsPage(ctx);
  else if (job) body = await jobPage(ctx, jobIdParam(job[1]!));
  else if (single) body = await jobActionPage(ctx, jobIdParam(single[1]!), single[2]!);
  else if (bulk) body = await bulkActionPage(ctx, bulk[1]!);
  else if (path === "/schedules") body = await schedulesPage(ctx);
  else if (path === "/schedule") body = await schedulePage(ctx);
  else if (path === "/workers") body = await workersPage(ctx);
  else throw new HttpError(404, `no page at ${path}`);
  sendHtml(ctx.res, 200, body);
}

/**
 * The form of a POST, after the checks every POST passes: not cross-site (browsers'
 * `Sec-Fetch-Site` and `Origin`), and carrying this page's CSRF token.
 */
async function postedForm(ctx: RequestContext): Promise<Record<string, string>> {
  const crossSite = crossSiteReason(ctx.req);
  if (crossSite) throw new HttpError(403, `refused: ${crossSite}`);
  const form = await readForm(ctx.req);
  if (!ctx.guard.csrfValid(ctx.identity, form.csrf)) {
    throw new HttpError(403, "refused: the form's token is missing or stale (reload the page and try again)");
  }
  return form;
}

/** 401: the sign-in form for a token, the browser's prompt for basic authentication. */
function refuseUnauthenticated(ctx: RequestContext): void {
  const challenges: string[] = [];
  if (ctx.guard.auth?.username) challenges.push('Basic realm="punctual", charset="UTF-8"');
  if (ctx.guard.auth?.token) challenges.push('Bearer realm="punctual"');
  const here = `${ctx.base}${ctx.path === "/" ? "/" : ctx.path}${ctx.query.size ? `?${ctx.query}` : ""}`;
  if (ctx.method === "POST") {
    throw new HttpError(401, "sign in first", { "WWW-Authenticate": challenges });
  }
  sendHtml(ctx.res, 401, loginPage(ctx, { next: here }), { "WWW-Authenticate": challenges });
}

function describe(error: unknown): [number, string, Record<string, string | string[]>] {
  if (error instanceof HttpError) return [error.status, error.message, error.headers];
  if (error instanceof ValidationError) {
    const bad = badParameter(error);
    return [bad.status, bad.message, {}];
  }
  const { code, message } = error as { code?: string; message?: string };
  if (code === "42P01" || code === "3F000") return [500, `${message} (has \`punctual migrate\` run on this database?)`, {}];
  if (isConnectionError(error)) return [503, `the database did not answer: ${message}`, {}];
  return [500, `the dashboard failed: ${message ?? String(error)}`, {}];
}
