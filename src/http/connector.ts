import dns from "node:dns";
import net from "node:net";
import type { Agent, buildConnector } from "undici";
import { describeRefusals, type AddressPolicy, type Refusal } from "./address.js";

/** A resolved address, as `dns.lookup(host, { all: true })` gives them. */
export interface LookupAddress {
  address: string;
  family: number;
}

/**
 * How host names are resolved: every address of `hostname`. Default
 * `dns.promises.lookup(hostname, { all: true })` (the system resolver, /etc/hosts
 * included).
 */
export type Lookup = (hostname: string) => Promise<readonly LookupAddress[]>;

const systemLookup: Lookup = (hostname) => dns.promises.lookup(hostname, { all: true });

/** The HTTP task would have connected to an address its policy refuses. No retry can change that. */
export class AddressRefusedError extends Error {
  override name = "AddressRefusedError";
  readonly code = "PUNCTUAL_ADDRESS_REFUSED";
}

let undici: Promise<typeof import("undici")> | undefined;

/**
 * undici, imported at the first HTTP request: an app that never sends one does not pay
 * for loading it (a sizeable module) when it imports Punctual.
 */
export function loadUndici(): Promise<typeof import("undici")> {
  return (undici ??= import("undici"));
}

type NodeLookupCallback = (error: Error | null, address: string | LookupAddress[], family?: number) => void;

/**
 * An undici Agent that connects only where `policy` allows, checked on the addresses
 * actually connected to, so that DNS cannot get around it (a name that resolves to
 * 127.0.0.1, or rebinds between a check and the connection):
 * - a host name is resolved by `lookup` inside the connection (Node's `lookup` hook):
 *   refused addresses are dropped from the answer before the socket picks one, and a
 *   name left with none fails the connection;
 * - an IP literal (which Node connects to without a lookup) is checked before the
 *   socket opens;
 * - once connected, the socket's remote address is checked again, and the socket is
 *   destroyed before a byte of the request is written if it is refused.
 * Every connection of every request goes through it: redirects too, and a kept-alive
 * connection was checked when it opened. No proxy is used (`HTTP_PROXY` is ignored).
 */
export async function guardedAgent(policy: AddressPolicy, lookup: Lookup = systemLookup): Promise<Agent> {
  const { Agent, buildConnector } = await loadUndici();
  const checkedLookup = (hostname: string, options: dns.LookupOptions, callback: NodeLookupCallback) => {
    lookup(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
        const allowed: LookupAddress[] = [];
        const refusals: Refusal[] = [];
        for (const found of wanted) {
          const refusal = policy.refusal(found.address);
          if (refusal) refusals.push(refusal);
          else allowed.push({ address: found.address, family: found.family });
        }
        if (allowed.length === 0) {
          callback(new AddressRefusedError(describeRefusals(refusals, hostname)), options.all ? [] : "", undefined);
          return;
        }
        if (options.all) callback(null, allowed);
        else callback(null, allowed[0]!.address, allowed[0]!.family);
      },
      (error: Error) => callback(error, options.all ? [] : "", undefined),
    );
  };
  const base = buildConnector({ lookup: checkedLookup as never });
  const connect: buildConnector.connector = (options, callback) => {
    const host = options.hostname.startsWith("[") ? options.hostname.slice(1, -1) : options.hostname;
    if (net.isIP(host)) {
      const refusal = policy.refusal(host);
      if (refusal) return callback(new AddressRefusedError(describeRefusals([refusal])), null);
    }
    base(options, (error, socket) => {
      if (error) return callback(error, null);
      const remote = socket!.remoteAddress;
      const refusal = policy.refusal(remote ?? "(none)");
      if (refusal) {
        socket!.destroy();
        return callback(new AddressRefusedError(`connected to ${describeRefusals([refusal])}`), null);
      }
      callback(null, socket!);
    });
  };
  return new Agent({ connect });
}

/** The `AddressRefusedError` in an error or its causes, if any (undici may wrap what a connector reports). */
export function addressRefusal(error: unknown): AddressRefusedError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof AddressRefusedError) return e;
  }
  return undefined;
}
