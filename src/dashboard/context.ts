/**
 * One request as the pages see it: where the dashboard is mounted, who asks, in which
 * zone they read times, what the forms must carry; and the ways a page answers (a page,
 * a redirect, an error page).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Executor } from "../executor.js";
import { CONTENT_SECURITY_POLICY } from "./assets.js";
import type { Guard, Identity } from "./security.js";

/** An answer other than the page asked for: a status and a message for people. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string | string[]> = {},
  ) {
    super(message);
  }
}

/** What a page handler gets: the request, where the dashboard sits, who asks, and how to render for them. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Where the dashboard is mounted (`/dashboard`), or `""` at the root: every link starts with it. */
  base: string;
  /** The path below `base`: `/`, `/jobs`, `/jobs/42`. */
  path: string;
  query: URLSearchParams;
  method: string;
  db: Executor;
  guard: Guard;
  identity: Identity;
  /** The token every form of this page carries. */
  csrf: string;
  readOnly: boolean;
  /** The viewer's time zone, and where it came from. */
  zone: string;
  zoneSource: "query" | "cookie" | "default";
  /** A notice a redirect carried (what an action did), checked against its signature. */
  notice: Notice | null;
}

/** A line a redirect carries to the next page: what an action did (`bad` when it did nothing). */
export interface Notice {
  text: string;
  bad: boolean;
}

/**
 * A link inside the dashboard: `base` + `path`, with the parameters that have a value;
 * a zone chosen by `?tz=` travels along.
 */
export function link(ctx: RequestContext, path: string, params: Record<string, string | number | undefined | null> = {}): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  if (ctx.zoneSource === "query" && !search.has("tz")) search.set("tz", ctx.zone);
  const text = search.toString();
  return `${ctx.base}${path}${text ? `?${text}` : ""}`;
}

/** The headers every answer carries. */
export function securityHeaders(res: ServerResponse): void {
  res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Referrer-Policy", "same-origin");
  // Pages hold job data and tokens for forms: not for shared caches, nor the back button's.
  res.setHeader("Cache-Control", "no-store");
}

/** Sends an HTML page. */
export function sendHtml(res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.statusCode = status;
  res.setHeader("Content-Type", "text/html; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

/** Answers a POST with 303 See Other: the browser GETs `location`, and a reload does not post again. */
export function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.statusCode = 303;
  res.setHeader("Location", location);
  res.setHeader("Content-Length", 0);
  res.end();
}

/** The largest form body the dashboard reads (its forms hold a token and a few fields). */
const FORM_MAX_BYTES = 64 * 1024;

/**
 * The fields of a form POST (`application/x-www-form-urlencoded`). A framework that
 * already parsed the body (Express's `urlencoded()`) left it on `req.body`; otherwise
 * the stream is read here.
 */
export async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  const parsed = (req as { body?: unknown }).body;
  if (typeof parsed === "string") return Object.fromEntries(new URLSearchParams(parsed));
  if (parsed && typeof parsed === "object" && !Buffer.isBuffer(parsed)) {
    return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
  }
  if (Buffer.isBuffer(parsed)) return Object.fromEntries(new URLSearchParams(parsed.toString("utf8")));
  if (req.readableEnded) return {};
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > FORM_MAX_BYTES) throw new HttpError(413, "the form is too large");
    chunks.push(chunk as Buffer);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
}
