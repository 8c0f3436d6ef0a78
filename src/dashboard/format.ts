/**
 * Values as the dashboard's pages show them: instants in the viewer's zone (with UTC on
 * hover), ages, counts that may be lower bounds, state badges. All through `html`, so
 * every value is escaped.
 */
import { duration } from "../cli/format.js";
import { DateTime, IANAZone } from "luxon";
import type { JobState } from "../schema.js";
import type { BoundedCount } from "../ops/stats.js";
import { html, type Html } from "./html.js";

/** Whether `zone` is an IANA time zone name luxon knows (`Europe/Paris`, `UTC`). */
export function isZone(zone: string): boolean {
  return zone.length <= 64 && IANAZone.isValidZone(zone);
}

/** An instant in `zone`, for people: `2026-03-09 08:00:00`, with the zone's offset when asked. */
export function local(instant: Date, zone: string, withOffset = false): string {
  const t = DateTime.fromJSDate(instant, { zone });
  if (!t.isValid) return instant.toISOString();
  return t.toFormat(withOffset ? "yyyy-MM-dd HH:mm:ss ZZ" : "yyyy-MM-dd HH:mm:ss");
}

/** An instant in the viewer's zone, the exact UTC instant on hover; `-` for none. */
export function when(instant: Date | null | undefined, zone: string): Html {
  if (!instant) return html`<span class="muted">-</span>`;
  return html`<time datetime="${instant.toISOString()}" title="${instant.toISOString()}">${local(instant, zone)}</time>`;
}

/** A duration for people, as the CLI writes it (`850ms`, `42s`, `3m12s`, `5h03m`, `2d04h`); negative as `-42s`. */
export function age(ms: number): string {
  return ms < 0 ? `-${duration(-ms)}` : duration(ms);
}

/** A count read up to a bound: `10,000+` when it was capped. */
export function count(c: BoundedCount): string {
  return `${c.count.toLocaleString("en-US")}${c.capped ? "+" : ""}`;
}

/** A job state as a coloured badge. */
export function state(s: JobState): Html {
  return html`<span class="state state-${s}">${s}</span>`;
}

/** The first line of a text, cut to `max` characters. */
export function short(text: string | null | undefined, max = 80): string {
  if (!text) return "";
  const first = text.split("\n", 1)[0]!;
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** JSON for reading: indented; a value JSON cannot show as it is stored is shown as text. */
export function prettyJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? "null";
  } catch {
    return String(value);
  }
}
