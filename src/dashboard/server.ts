/**
 * The dashboard on a server of its own (`punctual dashboard`): loopback by default, and
 * never beyond it without authentication.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ValidationError } from "../errors.js";
import { securityHeaders, sendHtml } from "./context.js";
import { createDashboard, type DashboardOptions } from "./dashboard.js";
import { escapeHtml } from "./html.js";
import { isLoopbackHost } from "./security.js";

/** `createDashboard`'s options, and where to listen. */
export interface StartDashboardOptions extends DashboardOptions {
  /** Default 4000; 0 takes any free port (`url` says which). */
  port?: number;
  /** Default `127.0.0.1`. An address beyond loopback (`0.0.0.0`, a LAN address) needs `auth`. */
  host?: string;
}

/** A dashboard `startDashboard` serves. */
export interface RunningDashboard {
  /** Where it answers: `http://127.0.0.1:4000/`. */
  url: string;
  server: Server;
  /** Stops listening, closes open connections and ends the dashboard's own pool. */
  close(): Promise<void>;
}

/**
 * Serves the dashboard with `node:http`; resolves once it listens. Refuses (a
 * `ValidationError` on `host`, before anything listens or connects) to bind an address
 * beyond loopback without `auth`. Without `auth`, it also answers only requests
 * addressed to a loopback name (the `Host` header), so that a web page cannot reach it
 * through a DNS name that points at 127.0.0.1 (DNS rebinding).
 *
 * @example
 * const dashboard = await startDashboard({ connectionString: process.env.DATABASE_URL, port: 4000 });
 * console.log(dashboard.url);
 * // ...
 * await dashboard.close();
 */
export async function startDashboard(options: StartDashboardOptions): Promise<RunningDashboard> {
  const { port = 4000, host = "127.0.0.1", ...rest } = options;
  const authenticated = Boolean(rest.auth?.token || rest.auth?.username);
  if (!isLoopbackHost(host) && !authenticated) {
    throw new ValidationError(
      "host",
      `refusing to listen on ${host} without authentication: anyone who reaches it could act on your jobs. ` +
        "Give a token or a username and password (punctual dashboard: --token or PUNCTUAL_DASHBOARD_TOKEN, " +
        "--basic-auth user:pass or PUNCTUAL_DASHBOARD_BASIC_AUTH), or listen on 127.0.0.1",
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ValidationError("port", `must be a port from 0 to 65535; got ${port}`);
  const handler = createDashboard(rest);
  const server = createServer((req, res) => {
    if (!authenticated && !isLoopbackHost(hostName(req.headers.host ?? ""))) {
      securityHeaders(res);
      sendHtml(res, 403, `<!doctype html><title>Forbidden</title><p>This dashboard answers only requests to a loopback address (127.0.0.1, localhost, [::1]); got Host: ${escapeHtml(req.headers.host ?? "(none)")}.</p>`);
      return;
    }
    handler(req, res);
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await handler.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  return {
    url: `http://${urlHost(address.address)}:${address.port}${rest.basePath?.replace(/\/+$/, "") ?? ""}/`,
    server,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await handler.close();
    },
  };
}

/** The host of a `Host` header, without its port. */
function hostName(header: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(header);
  if (bracketed) return bracketed[1]!;
  return header.replace(/:\d+$/, "");
}

/** An address as a URL's host: a wildcard as the loopback address that reaches it, IPv6 in brackets. */
function urlHost(address: string): string {
  if (address === "0.0.0.0") return "127.0.0.1";
  if (address === "::") return "[::1]";
  return address.includes(":") ? `[${address}]` : address;
}
