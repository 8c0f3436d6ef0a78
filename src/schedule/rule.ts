import { CronExpressionParser } from "cron-parser";
import { IANAZone } from "luxon";
import { z } from "zod";
import { ValidationError } from "../errors.js";
import { storableString } from "../json.js";
import { zodError } from "../tasks.js";
import { durationSchema, type Duration } from "./duration.js";

/**
 * What happens to slots that passed while nothing ran (everything was down):
 * - `once` (default): the overdue occurrence runs once, late; then the schedule resumes
 *   at the first slot after now;
 * - `skip`: an occurrence whose next slot has also passed does not run; the schedule
 *   moves to the first slot after now;
 * - `all`: every missed slot runs, one after another, at most `MISSED_ALL_LIMIT` (the
 *   most recent ones).
 */
export type MissedPolicy = "once" | "skip" | "all";
export const MISSED_POLICIES = ["once", "skip", "all"] as const;

/** How many missed slots the `all` policy runs at most after an outage. */
export const MISSED_ALL_LIMIT = 100;

/** The shortest and longest fixed interval. */
export const EVERY_MIN_MS = 100;
export const EVERY_MAX_MS = 366 * 86_400_000;

/**
 * When a periodic job runs: a cron expression (5 fields, or 6 with seconds first) in an
 * IANA time zone (default UTC), or a fixed interval.
 *
 * @example
 * { cron: "0 8 * * *", tz: "Europe/Paris" }      // every day at 08:00, Paris time
 * { cron: "0 10 * * MON" }                       // Mondays at 10:00 UTC
 * { every: "10m" }                               // every 10 minutes, on a fixed grid
 * { every: "1h", fixedDelay: true }              // an hour after each run finishes
 */
export type ScheduleRule =
  | { cron: string; tz?: string; missed?: MissedPolicy }
  | { every: Duration; fixedDelay?: boolean; missed?: MissedPolicy };

/** A rule after validation: what the time math works on. */
export type Rule =
  | { kind: "cron"; cron: string; tz: string }
  | { kind: "every"; everyMs: number; fixedDelay: boolean };

const cronSchema = storableString()
  .trim()
  .superRefine((expression, ctx) => {
    const fields = expression.split(/\s+/).length;
    if (!expression.startsWith("@") && fields !== 5 && fields !== 6) {
      ctx.addIssue({ code: "custom", message: `"${expression}" has ${fields} fields; a cron rule has 5, or 6 with seconds` });
      return;
    }
    const error = cronError(expression);
    if (error) ctx.addIssue({ code: "custom", message: `"${expression}" is not a valid cron expression: ${error}` });
  });

const cronErrors = new Map<string, string | null>();

/** Why cron-parser refuses an expression, or null; remembered, as parsing is the costly part. */
function cronError(expression: string): string | null {
  let error = cronErrors.get(expression);
  if (error === undefined) {
    try {
      CronExpressionParser.parse(expression, { tz: "UTC" });
      error = null;
    } catch (thrown) {
      error = (thrown as Error).message;
    }
    if (cronErrors.size >= 1000) cronErrors.clear();
    cronErrors.set(expression, error);
  }
  return error;
}

const tzSchema = storableString()
  .refine((tz) => IANAZone.isValidZone(tz), { error: (issue) => `"${issue.input}" is not an IANA time zone` });

const missedSchema = z.enum(MISSED_POLICIES).default("once");

const cronRuleSchema = z.strictObject({ cron: cronSchema, tz: tzSchema.default("UTC"), missed: missedSchema });
const everyRuleSchema = z.strictObject({
    every: durationSchema.pipe(
      z
        .number()
        .min(EVERY_MIN_MS, `must be at least ${EVERY_MIN_MS} ms`)
        .max(EVERY_MAX_MS, "must be at most 366 days; use a cron rule for longer periods"),
    ),
    fixedDelay: z.boolean().default(false),
    missed: missedSchema,
  });

/** A validated rule, as `parseRule` returns it. */
export type ParsedRule = z.output<typeof cronRuleSchema> | z.output<typeof everyRuleSchema>;

/**
 * Validates a rule. Errors name the field under `field` (`rule.cron`, `rule.tz`,
 * `rule.every`, `rule.missed`).
 */
export function parseRule(input: unknown, field = "rule"): ParsedRule {
  const isObject = typeof input === "object" && input !== null;
  const hasCron = isObject && "cron" in input;
  const hasEvery = isObject && "every" in input;
  if (hasCron === hasEvery) {
    throw new ValidationError(field, "give either cron (with an optional tz) or every");
  }
  const parsed = (hasCron ? cronRuleSchema : everyRuleSchema).safeParse(input);
  if (!parsed.success) throw zodError(field, parsed.error);
  return parsed.data;
}

/** The pure-math view of a validated rule. */
export function toRule(parsed: ParsedRule): Rule {
  return "cron" in parsed
    ? { kind: "cron", cron: parsed.cron, tz: parsed.tz }
    : { kind: "every", everyMs: parsed.every, fixedDelay: parsed.fixedDelay };
}

/** The rule's columns in `punctual.jobs`. */
export interface RuleColumns {
  cron: string | null;
  tz: string | null;
  every_ms: number | null;
  fixed_delay: boolean;
  missed: MissedPolicy;
}

export function ruleToColumns(parsed: ParsedRule): RuleColumns {
  return "cron" in parsed
    ? { cron: parsed.cron, tz: parsed.tz, every_ms: null, fixed_delay: false, missed: parsed.missed }
    : { cron: null, tz: null, every_ms: parsed.every, fixed_delay: parsed.fixedDelay, missed: parsed.missed };
}

/** The rule a row carries, or null for a one-off job. */
export function ruleFromColumns(row: { cron: string | null; tz: string | null; every_ms: number | string | null; fixed_delay: boolean }): Rule | null {
  if (row.cron) return { kind: "cron", cron: row.cron, tz: row.tz ?? "UTC" };
  if (row.every_ms !== null) return { kind: "every", everyMs: Number(row.every_ms), fixedDelay: row.fixed_delay };
  return null;
}
