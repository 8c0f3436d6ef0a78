/**
 * Every schedule, as operators read them: one live row per key carries the rule, so a
 * schedule is listed from the live rows that have one, in key order, paged by key.
 */
import { z } from "zod";
import { ValidationError } from "../errors.js";
import { toQueryable, type Executor } from "../executor.js";
import type { JobState } from "../schema.js";
import { zodError } from "../tasks.js";
import { checkFilter, filterConditions, Params } from "./filter.js";
import { inZone, nextRunOf, ruleView, ruleZone, type RuleColumnsRow, type RuleView } from "./rule-view.js";

/** One schedule: its live occurrence, its rule, its next run, and how the last one ended. */
export interface ScheduleSummary {
  key: string;
  task: string;
  queue: string;
  rule: RuleView;
  /** The zone its times are shown in: the cron rule's, or UTC for an interval. */
  zone: string;
  /** The live occurrence: its id, `pending` or `running`, and attempts so far (a retry in progress shows here). */
  id: number;
  state: Extract<JobState, "pending" | "running">;
  attempts: number;
  /** The error of the live occurrence's last failed attempt, if it is retrying. */
  lastError: string | null;
  /** The slot the live occurrence stands for; null for a schedule written by SQL that no worker has placed yet. */
  slotAt: Date | null;
  /** When it runs next (see `nextRunOf`); null when the rule cannot be evaluated. */
  nextRunAt: Date | null;
  /** The same instant in the schedule's zone, with its offset: `2026-03-09T08:00:00+01:00`. */
  nextRunLocal: string | null;
  /** True when it comes from a declared schedule list. */
  declared: boolean;
  /** The previous occurrence of this key, finished: null when there is none (a new schedule, or pruned by retention). */
  lastOutcome: { id: number; state: Extract<JobState, "succeeded" | "failed" | "cancelled">; finishedAt: Date | null; lastError: string | null } | null;
}

export interface ListSchedulesOptions {
  task?: string;
  queue?: string;
  /** Schedules whose key starts with this text. */
  keyPrefix?: string;
  /** Schedules per page, 1 to 1000. Default 100. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string | null;
}

export interface SchedulePage {
  schedules: ScheduleSummary[];
  nextCursor: string | null;
}

export const SCHEDULE_PAGE_DEFAULT = 100;

const optionsSchema = z.strictObject({
  task: z.string().optional(),
  queue: z.string().optional(),
  keyPrefix: z.string().optional(),
  limit: z
    .int({ error: "must be an integer" })
    .min(1, "must be at least 1")
    .max(1000, "must be at most 1000")
    .default(SCHEDULE_PAGE_DEFAULT),
  cursor: z.string().nullish(),
});

/**
 * One page of schedules in key order. Reads the live-key index (keyed pending and
 * running rows, by key; a periodic job enqueued by SQL without a key is not in it, and
 * not listed) in order, keeps the rows that carry a rule, and finds each one's
 * previous occurrence through the key index: the cost is the page's, not the table's.
 *
 * @example
 * const { schedules } = await listSchedules(pool, { keyPrefix: "todo-email:" });
 * for (const s of schedules) console.log(s.key, s.nextRunLocal, s.lastOutcome?.state);
 */
export async function listSchedules(executor: Executor, options: ListSchedulesOptions = {}): Promise<SchedulePage> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw zodError("", parsed.error);
  const { limit, cursor, ...filterInput } = parsed.data;
  const filter = checkFilter(filterInput);
  const params = new Params();
  const conditions = filterConditions(filter, params, "s");
  if (cursor) conditions.push(`s.key > ${params.add(decodeKeyCursor(cursor))}`);
  const rows = await toQueryable(executor).query<RuleColumnsRow & Record<string, unknown>>(
    `select s.id, s.key, s.task, s.queue, s.state, s.run_at, s.attempts, s.last_error, s.slot_at, s.declared,
            s.cron, s.tz, s.every_ms, s.fixed_delay, s.missed, now() as db_now,
            prev.id as prev_id, prev.state as prev_state, prev.finished_at as prev_finished_at, prev.last_error as prev_error
     from punctual.jobs as s
     left join lateral (
       select h.id, h.state, h.finished_at, h.last_error from punctual.jobs as h
       where h.key = s.key and h.id < s.id and h.state in ('succeeded', 'failed', 'cancelled')
       order by h.id desc limit 1
     ) as prev on true
     where s.key is not null and s.state in ('pending', 'running') and (s.cron is not null or s.every_ms is not null)
       ${conditions.map((c) => `and ${c}`).join(" ")}
     order by s.key
     limit ${params.add(limit + 1)}`,
    params.values,
  );
  const page = rows.slice(0, limit);
  const schedules = page.map((row): ScheduleSummary => {
    const rule = ruleView(row)!;
    const zone = ruleZone(rule);
    const nextRunAt = nextRunOf(rule, row as never, row.db_now as Date);
    return {
      key: row.key as string,
      task: row.task as string,
      queue: row.queue as string,
      rule,
      zone,
      id: Number(row.id),
      state: row.state as ScheduleSummary["state"],
      attempts: row.attempts as number,
      lastError: (row.last_error as string | null) ?? null,
      slotAt: (row.slot_at as Date | null) ?? null,
      nextRunAt,
      nextRunLocal: nextRunAt && inZone(nextRunAt, zone),
      declared: row.declared as boolean,
      lastOutcome:
        row.prev_id === null
          ? null
          : {
              id: Number(row.prev_id),
              state: row.prev_state as NonNullable<ScheduleSummary["lastOutcome"]>["state"],
              finishedAt: (row.prev_finished_at as Date | null) ?? null,
              lastError: (row.prev_error as string | null) ?? null,
            },
    };
  });
  const last = page.at(-1);
  return {
    schedules,
    nextCursor: rows.length > limit && last ? Buffer.from(JSON.stringify({ key: last.key })).toString("base64url") : null,
  };
}

function decodeKeyCursor(text: string): string {
  try {
    const { key } = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as { key?: unknown };
    if (typeof key === "string") return key;
  } catch {
    // Said below.
  }
  throw new ValidationError("cursor", "is not a cursor this list gave (pass nextCursor as it came)");
}
