/**
 * A periodic row's rule as operators read it, and the time of its next run in its own
 * zone. The time math is `schedule/next.ts`'s; this only maps columns and formats.
 */
import { DateTime } from "luxon";
import { nextOccurrence, nextRunAt } from "../schedule/next.js";
import { ruleFromColumns, type MissedPolicy, type Rule } from "../schedule/rule.js";

/** A schedule's rule: a cron expression in a zone, or a fixed interval; and its missed-run policy. */
export type RuleView =
  | { kind: "cron"; cron: string; tz: string; missed: MissedPolicy }
  | { kind: "every"; everyMs: number; fixedDelay: boolean; missed: MissedPolicy };

/** The rule columns of a row of `punctual.jobs`. */
export interface RuleColumnsRow {
  cron: string | null;
  tz: string | null;
  every_ms: number | string | null;
  fixed_delay: boolean;
  missed: MissedPolicy;
}

/** The rule a row carries, or null for a one-off job. */
export function ruleView(row: RuleColumnsRow): RuleView | null {
  const rule = ruleFromColumns(row);
  if (!rule) return null;
  return rule.kind === "cron"
    ? { kind: "cron", cron: rule.cron, tz: rule.tz, missed: row.missed }
    : { kind: "every", everyMs: rule.everyMs, fixedDelay: rule.fixedDelay, missed: row.missed };
}

/** The zone a rule's times are shown in: a cron rule's own, UTC for an interval. */
export function ruleZone(rule: RuleView): string {
  return rule.kind === "cron" ? rule.tz : "UTC";
}

/**
 * When a schedule runs next: a pending occurrence at its `run_at` (one written by SQL
 * and not placed yet, at the rule's first slot after now); while one runs, the
 * slot of the one after it, computed from the rule and the running slot as the worker
 * will compute it when that run finishes (for a fixed-delay interval, an estimate:
 * `every` after now). Null when the rule cannot be evaluated (a cron written by SQL
 * that cron-parser refuses).
 */
export function nextRunOf(
  rule: RuleView,
  row: { state: string; run_at: Date; slot_at: Date | null },
  now: Date,
): Date | null {
  const math: Rule =
    rule.kind === "cron"
      ? { kind: "cron", cron: rule.cron, tz: rule.tz }
      : { kind: "every", everyMs: rule.everyMs, fixedDelay: rule.fixedDelay };
  try {
    if (row.state === "running") return nextOccurrence(math, rule.missed, row.slot_at, now);
    // Written by SQL and not placed yet: the worker that claims it places it on the
    // rule's first slot instead of running it (see job-runner.ts).
    if (!row.slot_at) return nextRunAt(math, now);
    return row.run_at;
  } catch {
    return null;
  }
}

/** An instant as an ISO 8601 time with the zone's offset, to the second: `2026-03-09T08:00:00+01:00`. */
export function inZone(instant: Date, zone: string): string {
  const local = DateTime.fromJSDate(instant, { zone });
  return local.isValid ? local.toISO({ suppressMilliseconds: true })! : instant.toISOString();
}

/** An instant as a wall-clock time and offset, for people: `2026-03-09 08:00:00 +01:00`. */
export function inZoneForPeople(instant: Date, zone: string): string {
  const local = DateTime.fromJSDate(instant, { zone });
  return local.isValid ? local.toFormat("yyyy-MM-dd HH:mm:ss ZZ") : instant.toISOString();
}
