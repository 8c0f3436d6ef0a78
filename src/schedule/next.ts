/**
 * Pure time math for periodic jobs: no database, no clock. Every function takes the
 * instants it needs, so tests use fixed dates.
 *
 * Cron rules are evaluated on wall-clock time in their zone, then mapped to instants:
 * - a wall-clock slot that does not exist (spring forward) runs at the next valid
 *   instant, the moment the clocks jump; several such slots collapse into one run;
 * - a wall-clock time that happens twice (fall back) runs once, at its first
 *   occurrence.
 */
import { CronExpressionParser, type CronExpression } from "cron-parser";
import { IANAZone } from "luxon";
import { MISSED_ALL_LIMIT, parseRule, toRule, type MissedPolicy, type Rule, type ScheduleRule } from "./rule.js";

/**
 * The next `count` slots of a rule after `after`: what a schedule would do, without a
 * database. Throws a `ValidationError` for an invalid rule.
 *
 * @example
 * upcomingSlots({ cron: "0 8 * * *", tz: "Europe/Paris" }, new Date(), 3);
 */
export function upcomingSlots(rule: ScheduleRule, after: Date, count: number): Date[] {
  const parsed = toRule(parseRule(rule));
  const slots: Date[] = [];
  let cursor = after;
  let anchor: Date | null = parsed.kind === "every" && !parsed.fixedDelay ? new Date(after.getTime() + parsed.everyMs) : null;
  for (let i = 0; i < count; i++) {
    cursor = i === 0 && anchor ? anchor : nextRunAt(parsed, cursor, anchor);
    anchor = anchor && cursor;
    slots.push(cursor);
  }
  return slots;
}

/**
 * The first slot of `rule` strictly after `after`. For a fixed-rate interval, slots lie
 * on the grid `anchor + k × every` (anchor: the previous slot; without one, the grid
 * starts at `after`). For a fixed-delay interval, it is `after + every`.
 */
export function nextRunAt(rule: Rule, after: Date, anchor?: Date | null): Date {
  if (rule.kind === "every") {
    if (rule.fixedDelay || !anchor) return new Date(after.getTime() + rule.everyMs);
    const start = anchor.getTime();
    if (after.getTime() < start) return new Date(start);
    const steps = Math.floor((after.getTime() - start) / rule.everyMs) + 1;
    return new Date(start + steps * rule.everyMs);
  }
  // Many jobs of one rule finish at the same slot (200 every-second schedules, a
  // million users' 08:00): the answer for a (rule, instant) is computed once.
  const memoKey = `${rule.cron}\u0000${rule.tz}\u0000${after.getTime()}`;
  const known = nextCronSlot.get(memoKey);
  if (known !== undefined) return new Date(known);
  const iterator = cronAt(rule.cron, toWall(after, rule.tz));
  for (;;) {
    const instant = wallToInstant(iterator.next().toDate().getTime(), rule.tz);
    // A slot in a repeated hour, or several slots in a skipped one, can map to an
    // instant at or before `after`: those have already had their run.
    if (instant > after.getTime()) {
      if (nextCronSlot.size >= 10_000) nextCronSlot.clear();
      nextCronSlot.set(memoKey, instant);
      return new Date(instant);
    }
  }
}

/** Answers of `nextRunAt` for cron rules, by rule and instant (a bounded cache; the math is pure). */
const nextCronSlot = new Map<string, number>();

/**
 * When the occurrence after the one for `slot` runs, given that it finished at `now`:
 * slots come from the rule, not from when the run ended (a 08:00 job that ran at
 * 08:00:02 is next due at 08:00 tomorrow), and the missed-run policy decides what
 * happens to slots that passed meanwhile.
 */
export function nextOccurrence(rule: Rule, policy: MissedPolicy, slot: Date | null, now: Date): Date {
  if (rule.kind === "every" && rule.fixedDelay) return nextRunAt(rule, now);
  const base = slot ?? now;
  if (policy !== "all") return nextRunAt(rule, base > now ? base : now, slot);
  const first = nextRunAt(rule, base, slot);
  if (first > now) return first;
  const earliestKept = nthSlotAtOrBefore(rule, now, MISSED_ALL_LIMIT, slot);
  return earliestKept > first ? earliestKept : first;
}

/**
 * True when the occurrence for `slot` is so late that its next slot has come too: it
 * was missed, not merely delayed. A fixed-delay schedule is never late.
 */
export function isMissed(rule: Rule, slot: Date | null, now: Date): boolean {
  if (!slot || (rule.kind === "every" && rule.fixedDelay)) return false;
  return nextRunAt(rule, slot, slot) <= now;
}

/** The n-th most recent slot at or before `at` (n = 1: the latest). */
function nthSlotAtOrBefore(rule: Rule, at: Date, n: number, anchor: Date | null): Date {
  if (rule.kind === "every") {
    const start = (anchor ?? at).getTime();
    const latest = start + Math.floor((at.getTime() - start) / rule.everyMs) * rule.everyMs;
    return new Date(latest - (n - 1) * rule.everyMs);
  }
  // Start just after `at` so that a slot exactly at `at` counts.
  const iterator = cronAt(rule.cron, toWall(at, rule.tz) + 1);
  const seen = new Set<number>();
  let instant = at.getTime();
  while (seen.size < n) {
    instant = wallToInstant(iterator.prev().toDate().getTime(), rule.tz);
    if (instant <= at.getTime()) seen.add(instant);
  }
  return new Date(instant);
}

const parsedCron = new Map<string, CronExpression>();

/**
 * A cron iterator positioned at a wall-clock time. Parsing costs far more than
 * iterating, and thousands of per-user schedules share a handful of expressions, so
 * parsed expressions are kept (a bounded cache) and reset; callers use the iterator
 * synchronously, so sharing one is safe.
 */
function cronAt(cron: string, wall: number): CronExpression {
  let iterator = parsedCron.get(cron);
  if (!iterator) {
    if (parsedCron.size >= 1000) parsedCron.clear();
    iterator = CronExpressionParser.parse(cron, { tz: "UTC" });
    parsedCron.set(cron, iterator);
  }
  iterator.reset(new Date(wall));
  return iterator;
}

/** The wall-clock time of an instant in `tz`, as milliseconds of a naive UTC date. */
function toWall(instant: Date, tz: string): number {
  return instant.getTime() + offsetAt(instant.getTime(), tz) * MINUTE;
}

/**
 * Offset of `tz` at an instant, in minutes. IANAZone caches its formatter per zone;
 * UTC, the most common zone of all, skips it (a formatter call costs microseconds,
 * and a busy worker computes a next slot for every periodic job it finishes).
 */
const offsetAt = (ms: number, tz: string) => (tz === "UTC" ? 0 : IANAZone.create(tz).offset(ms));
const MINUTE = 60_000;
const HOURS_36 = 36 * 3_600_000;

/**
 * The instant a wall-clock time (naive UTC milliseconds) stands for in `tz`: the first
 * one when it happens twice, the transition itself when it does not exist.
 */
function wallToInstant(wall: number, tz: string): number {
  // Zone offsets change at most twice a year, so the offsets in force within a day and
  // a half either side cover both sides of any transition near this wall time.
  const offsets = new Set([offsetAt(wall - HOURS_36, tz), offsetAt(wall, tz), offsetAt(wall + HOURS_36, tz)]);
  // No transition within a day and a half: one offset, and the time exists once.
  if (offsets.size === 1) return wall - [...offsets][0]! * MINUTE;
  const valid = [...offsets].map((o) => wall - o * MINUTE).filter((t) => offsetAt(t, tz) * MINUTE === wall - t);
  if (valid.length > 0) return Math.min(...valid);
  // In a gap: find the transition between the two readings of this wall time.
  const readings = [...offsets].map((o) => wall - o * MINUTE);
  let lo = Math.min(...readings);
  let hi = Math.max(...readings);
  const before = offsetAt(lo, tz);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(mid, tz) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}
