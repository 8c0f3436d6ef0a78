/**
 * A schedule's recent occurrences, with what went wrong in time: an occurrence that
 * started long after its slot (late), and slots that no occurrence stands for (missed,
 * while nothing ran). Read through the key index, a few rows per schedule; the marks
 * are computed from the rule, with the same time math the worker uses.
 */
import { z } from "zod";
import { toQueryable, type Executor } from "../executor.js";
import type { JobState } from "../schema.js";
import { nextRunAt } from "../schedule/next.js";
import type { Rule } from "../schedule/rule.js";
import { zodError } from "../tasks.js";
import type { RuleView } from "./rule-view.js";

/** One finished occurrence of a schedule. */
export interface Occurrence {
  id: number;
  state: Extract<JobState, "succeeded" | "failed" | "cancelled">;
  /** The slot it stood for (null for a row without one: a keyed job from before the schedule). */
  slotAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  attempts: number;
  /** How long after its slot it (last) started, when that exceeds `lateAfterMs`; else null. */
  lateMs: number | null;
  /** Slots of the rule between the previous occurrence shown and this one that nothing ran for. Null for the oldest shown. */
  missedBefore: number | null;
}

/** The most missed slots counted between two occurrences ("100 or more"). */
export const MISSED_COUNT_MAX = 100;

const optionsSchema = z.strictObject({
  perKey: z.int({ error: "must be an integer" }).min(1, "must be at least 1").max(100, "must be at most 100").default(5),
  lateAfterMs: z.int({ error: "must be an integer" }).min(0, "must be 0 or more").default(60_000),
});

/** `perKey` (default 5, at most 100) and `lateAfterMs` (default 60,000). */
export type OccurrenceOptions = z.input<typeof optionsSchema>;

/**
 * The last `perKey` finished occurrences of each schedule, newest first, by key. One
 * statement: per key, a backward probe of the key index (key, id). `lateAfterMs`
 * (default a minute): how far past its slot a start must be to count as late; the
 * start of the last attempt counts, so an occurrence that was retried shows late.
 *
 * @example
 * const { schedules } = await listSchedules(pool);
 * const recent = await recentOccurrences(pool, schedules.map((s) => ({ key: s.key, rule: s.rule })));
 */
export async function recentOccurrences(
  executor: Executor,
  schedules: readonly { key: string; rule: RuleView }[],
  options: OccurrenceOptions = {},
): Promise<Map<string, Occurrence[]>> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw zodError("", parsed.error);
  const { perKey, lateAfterMs } = parsed.data;
  const result = new Map<string, Occurrence[]>();
  if (schedules.length === 0) return result;
  const rows = await toQueryable(executor).query<{
    key: string;
    id: string;
    state: Occurrence["state"];
    slot_at: Date | null;
    run_at: Date;
    started_at: Date | null;
    finished_at: Date | null;
    attempts: number;
  }>(
    `select k.key, o.* from unnest($1::text[]) as k(key)
     cross join lateral (
       select j.id, j.state, j.slot_at, j.run_at, j.started_at, j.finished_at, j.attempts from punctual.jobs as j
       where j.key = k.key and j.state in ('succeeded', 'failed', 'cancelled')
       order by j.id desc limit $2
     ) as o`,
    [schedules.map((s) => s.key), perKey],
  );
  for (const { key, rule } of schedules) {
    const mine = rows.filter((r) => r.key === key);
    const math = toRule(rule);
    result.set(
      key,
      mine.map((row, i): Occurrence => {
        const older = mine[i + 1];
        const due = row.slot_at ?? row.run_at;
        const late = row.started_at ? row.started_at.getTime() - due.getTime() : null;
        return {
          id: Number(row.id),
          state: row.state,
          slotAt: row.slot_at,
          startedAt: row.started_at,
          finishedAt: row.finished_at,
          attempts: row.attempts,
          lateMs: late !== null && late > lateAfterMs ? late : null,
          missedBefore: older ? missedBetween(math, older.slot_at, row.slot_at) : null,
        };
      }),
    );
  }
  return result;
}

/**
 * How many slots of `rule` lie strictly between two occurrences' slots: the runs
 * nothing stood for (everything was down, or the `skip` policy passed them). At most
 * `MISSED_COUNT_MAX`. Zero when either slot is unknown, when the rule cannot be
 * evaluated, or for a fixed-delay interval, whose slots follow the runs rather than a grid.
 */
export function missedBetween(rule: Rule, earlier: Date | null, later: Date | null): number {
  if (!earlier || !later || later <= earlier) return 0;
  if (rule.kind === "every" && rule.fixedDelay) return 0;
  let missed = 0;
  try {
    let slot = nextRunAt(rule, earlier, earlier);
    while (slot < later && missed < MISSED_COUNT_MAX) {
      missed++;
      slot = nextRunAt(rule, slot, earlier);
    }
  } catch {
    // A cron written by SQL that cron-parser refuses: nothing to count against.
  }
  return missed;
}

/** The time-math rule of a rule view. */
export function toRule(rule: RuleView): Rule {
  return rule.kind === "cron"
    ? { kind: "cron", cron: rule.cron, tz: rule.tz }
    : { kind: "every", everyMs: rule.everyMs, fixedDelay: rule.fixedDelay };
}
