/**
 * Who may see the dashboard and what a request may do: token and basic authentication
 * (compared in constant time), the session cookie the login form sets, the CSRF token
 * every form carries, the cross-site checks on POSTs, the signed notices that travel in
 * a redirect, and the rule that binds beyond loopback only with authentication.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/** Token and/or basic authentication; either one a request presents lets it in. */
export interface DashboardAuth {
  /** Accepted as `Authorization: Bearer <token>`, or typed once into the login form (then a cookie). */
  token?: string;
  /** Basic authentication: the browser asks for them. Give both. */
  username?: string;
  password?: string;
}

/** The name of the cookie the login form sets. */
export const SESSION_COOKIE = "punctual_session";

/** How long the login form's cookie lasts, in seconds. */
export const SESSION_MAX_AGE_S = 12 * 3600;

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();

/** Constant-time equality of two strings: their SHA-256 digests are compared, so neither length nor content leaks through timing. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** What a request proved about itself. */
export type Identity = { kind: "anonymous" } | { kind: "token"; via: "header" | "cookie" } | { kind: "basic"; username: string };

/**
 * The authentication of one dashboard, and the per-process secret behind its CSRF
 * tokens and signed notices.
 */
export class Guard {
  private readonly secret = randomBytes(32);

  constructor(readonly auth: DashboardAuth | undefined) {}

  /** True when requests must authenticate. */
  get required(): boolean {
    return Boolean(this.auth?.token || this.auth?.username);
  }

  /**
   * Who the request is, or null when authentication is required and it presented
   * nothing valid. Without authentication configured, everyone is anonymous.
   */
  identify(req: IncomingMessage): Identity | null {
    if (!this.required) return { kind: "anonymous" };
    const { token, username, password } = this.auth!;
    const header = req.headers.authorization ?? "";
    // The scheme, then everything after it (a token may hold spaces).
    const [, scheme = "", value = ""] = /^(\S+)\s*(.*)$/s.exec(header.trim()) ?? [];
    if (token && scheme.toLowerCase() === "bearer" && safeEqual(value, token)) return { kind: "token", via: "header" };
    if (username !== undefined && password !== undefined && scheme.toLowerCase() === "basic") {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      const user = colon < 0 ? decoded : decoded.slice(0, colon);
      const pass = colon < 0 ? "" : decoded.slice(colon + 1);
      // Both compared, always: no shortcut that tells a right user name from a wrong one.
      const ok = [safeEqual(user, username), safeEqual(pass, password)];
      if (ok[0] && ok[1]) return { kind: "basic", username };
    }
    const cookie = readCookie(req, SESSION_COOKIE);
    if (token && cookie !== undefined && safeEqual(cookie, this.sessionValue())) return { kind: "token", via: "cookie" };
    return null;
  }

  /** Whether `candidate` is the configured token. */
  tokenMatches(candidate: string): boolean {
    return Boolean(this.auth?.token) && safeEqual(candidate, this.auth!.token!);
  }

  /**
   * The session cookie's value: an HMAC keyed by the token, so it survives restarts
   * and is shared by replicas, proves knowledge of the token without carrying it, and
   * stops working when the token changes.
   */
  sessionValue(): string {
    return createHmac("sha256", this.auth?.token ?? "").update("punctual-dashboard-session").digest("base64url");
  }

  /** The CSRF token forms carry: an HMAC of the process's secret and who the viewer is. */
  csrfToken(identity: Identity): string {
    const who = identity.kind === "basic" ? `basic:${identity.username}` : identity.kind;
    return createHmac("sha256", this.secret).update(`csrf:${who}`).digest("base64url");
  }

  csrfValid(identity: Identity, candidate: unknown): boolean {
    return typeof candidate === "string" && safeEqual(candidate, this.csrfToken(identity));
  }

  /** A notice signed so that a link cannot make the dashboard say what it did not do. */
  sign(text: string): string {
    const body = Buffer.from(text, "utf8").toString("base64url");
    return `${body}.${createHmac("sha256", this.secret).update(body).digest("base64url")}`;
  }

  /** The text of a notice `sign` made, or null. */
  unsign(value: string): string | null {
    const [body, mac] = value.split(".");
    if (!body || !mac) return null;
    const expected = createHmac("sha256", this.secret).update(body).digest("base64url");
    return safeEqual(mac, expected) ? Buffer.from(body, "base64url").toString("utf8") : null;
  }
}

/**
 * Why a state-changing request must be refused as cross-site, or null when it may go
 * on. Browsers say where a request comes from: `Sec-Fetch-Site` (refused when
 * `cross-site`), and `Origin` (refused when its host is not the one the request was
 * sent to: `Host`, or `X-Forwarded-Host` behind a proxy). A form on another site can
 * set neither. Requests without these headers (curl, old browsers) still need the
 * CSRF token.
 */
export function crossSiteReason(req: IncomingMessage): string | null {
  if (req.headers["sec-fetch-site"] === "cross-site") return "the request came from another site (Sec-Fetch-Site: cross-site)";
  const origin = req.headers.origin;
  if (origin === undefined) return null;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return `the request's Origin (${origin}) is not this dashboard's`;
  }
  const hosts = [req.headers.host, firstValue(req.headers["x-forwarded-host"])].filter((h): h is string => Boolean(h));
  if (!hosts.some((h) => h.toLowerCase() === originHost.toLowerCase())) return `the request's Origin (${origin}) is not this dashboard's`;
  return null;
}

function firstValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value?.split(",")[0]?.trim();
}

/** One cookie of the request, decoded; undefined when absent or malformed. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Whether `host` stays on this machine: `localhost`, an address of 127.0.0.0/8, or
 * `::1` (also written as an IPv4-mapped IPv6 address). Anything else, `0.0.0.0` and
 * `::` included, can be reached from the network.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (bare === "localhost") return true;
  const version = isIP(bare);
  if (version === 4) return bare.split(".")[0] === "127";
  if (version === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
    if (mapped) return mapped[1]!.split(".")[0] === "127";
    return /^(0{0,4}:){2,7}0{0,3}1$/.test(bare) || bare === "::1";
  }
  return false;
}
