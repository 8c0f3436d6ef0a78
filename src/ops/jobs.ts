/**
 * Reading jobs as an operator does: lists filtered and paged by keyset (never OFFSET,
 * whose cost grows with the page number), and one job in full with the other jobs of
 * its key. The CLI's `jobs` and `show` and the dashboard read through these.
 */
import { z } from "zod";
import { ValidationError } from "../errors.js";
import { toQueryable, type Executor, type Queryable } from "../executor.js";
import { JOB_COLUMNS, toJob, type Job } from "../job.js";
import { storableString } from "../json.js";
import { PRIORITY_MAX, PRIORITY_MIN, type JobState } from "../schema.js";
import { jobGetByKey } from "../sql/jobs.js";
import { zodError } from "../tasks.js";
import { checkFilter, filterConditions, Params, type JobFilter } from "./filter.js";
import { ruleView, type RuleView } from "./rule-view.js";

/** One job in a list: what a table row shows (no payload, no stack). */
export interface JobSummary {
  id: number;
  task: string;
  queue: string;
  key: string | null;
  state: JobState;
  priority: number;
  runAt: Date;
  /** Attempts started so far, including a running one. */
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  /** The worker holding a running job. */
  lockedBy: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  createdAt: Date;
  /** True for an occurrence of a periodic schedule (the row carries a rule). */
  periodic: boolean;
}

/**
 * The order of a list:
 * - `newest`: most recently created first (id descending), any state;
 * - `due`: pending jobs, earliest `run_at` first (the jobs that are most overdue, then
 *   those due soonest), whatever their priority.
 */
export type JobOrder = "newest" | "due";

export interface ListJobsOptions extends JobFilter {
  order?: JobOrder;
  /** Jobs per page, 1 to 1000. Default 50. */
  limit?: number;
  /** `nextCursor` of the previous page; absent for the first page. */
  cursor?: string | null;
}

/** One page of jobs. */
export interface JobPage {
  jobs: JobSummary[];
  /** Pass it as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** The default and largest page sizes. */
export const JOB_PAGE_DEFAULT = 50;
export const JOB_PAGE_MAX = 1000;

const listOptionsSchema = z.object({
  order: z.enum(["newest", "due"], { error: "must be newest or due" }).default("newest"),
  limit: z
    .int({ error: "must be an integer" })
    .min(1, "must be at least 1")
    .max(JOB_PAGE_MAX, `must be at most ${JOB_PAGE_MAX}`)
    .default(JOB_PAGE_DEFAULT),
  cursor: z.string().nullish(),
});

const SUMMARY_COLUMNS = (j: string) => `${j}.id, ${j}.task, ${j}.queue, ${j}.key, ${j}.state, ${j}.priority, ${j}.run_at,
  ${j}.attempts, ${j}.max_attempts, ${j}.last_error, ${j}.locked_by, ${j}.started_at, ${j}.finished_at, ${j}.created_at,
  (${j}.cron is not null or ${j}.every_ms is not null) as periodic`;

/** `run_at` to the microsecond, as a cursor must carry it (a JavaScript Date keeps milliseconds). */
const EXACT_RUN_AT = (j: string) => `to_char(${j}.run_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as run_at_exact`;

/** Where the next page starts: after this row, in this order. Opaque to callers. */
type Cursor = { order: "newest"; id: number } | { order: "due"; runAt: string; id: number };

const cursorSchema = z.union([
  z.strictObject({ order: z.literal("newest"), id: z.int() }),
  z.strictObject({ order: z.literal("due"), runAt: z.iso.datetime({ precision: 6 }), id: z.int() }),
]);

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

function decodeCursor(text: string, order: JobOrder): Cursor {
  let cursor: Cursor;
  try {
    cursor = cursorSchema.parse(JSON.parse(Buffer.from(text, "base64url").toString("utf8")));
  } catch {
    throw new ValidationError("cursor", "is not a cursor this list gave (pass nextCursor as it came)");
  }
  if (cursor.order !== order) throw new ValidationError("cursor", `was given by a list in ${cursor.order} order, not ${order}`);
  return cursor;
}

/**
 * One page of jobs, filtered, newest first or (pending jobs) earliest due first.
 * Pages are cut by keyset: the next page starts after the last row of this one, so
 * paging costs the same on page 1 and page 10,000, and rows inserted meanwhile neither
 * repeat nor shift rows onto another page.
 *
 * Index use: `newest` walks the primary key backwards (or, for a rare state, reads that
 * state's partial index and sorts); `due` probes the claim index (pending rows, by
 * priority, run_at, id) once per priority, as the claim does, so a million future rows
 * behind the page cost nothing. Task, queue and key filters are applied to those scans:
 * a filter that matches few of the scanned rows makes the scan longer.
 *
 * @example
 * const page = await listJobs(pool, { state: "failed", task: "send-email", limit: 20 });
 * const next = await listJobs(pool, { state: "failed", task: "send-email", limit: 20, cursor: page.nextCursor });
 */
export async function listJobs(executor: Executor, options: ListJobsOptions = {}): Promise<JobPage> {
  const { order: orderInput, limit: limitInput, cursor: cursorInput, ...filterInput } = options;
  const parsed = listOptionsSchema.safeParse({ order: orderInput, limit: limitInput, cursor: cursorInput });
  if (!parsed.success) throw zodError("", parsed.error);
  const { order, limit, cursor: cursorText } = parsed.data;
  const filter = checkFilter(filterInput);
  const cursor = cursorText ? decodeCursor(cursorText, order) : null;
  const db = toQueryable(executor);
  const params = new Params();
  let rows: Record<string, unknown>[];
  if (order === "newest") {
    const conditions = filterConditions(filter, params);
    if (cursor) conditions.push(`j.id < ${params.add(cursor.id)}`);
    rows = await db.query(
      `select ${SUMMARY_COLUMNS("j")} from punctual.jobs as j
       ${conditions.length ? `where ${conditions.join(" and ")}` : ""}
       order by j.id desc limit ${params.add(limit + 1)}`,
      params.values,
    );
  } else {
    if (filter.states && (filter.states.length !== 1 || filter.states[0] !== "pending")) {
      throw new ValidationError("order", "due lists pending jobs only: give state pending, or no state");
    }
    const conditions = filterConditions({ ...filter, states: null }, params);
    if (cursor && cursor.order === "due") {
      conditions.push(`(j.run_at, j.id) > (${params.add(cursor.runAt)}::timestamptz, ${params.add(cursor.id)}::bigint)`);
    }
    const size = params.add(limit + 1);
    // One probe of the claim index per priority, each bounded by the page size, then
    // merged: an ORDER BY run_at over the whole index would read every pending row.
    rows = await db.query(
      `select page.* from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
       cross join lateral (
         select ${SUMMARY_COLUMNS("j")}, ${EXACT_RUN_AT("j")} from punctual.jobs as j
         where j.state = 'pending' and j.priority = p.priority ${conditions.map((c) => `and ${c}`).join(" ")}
         order by j.run_at, j.id
         limit ${size}
       ) as page
       order by page.run_at, page.id
       limit ${size}`,
      params.values,
    );
  }
  const more = rows.length > limit;
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  let nextCursor: string | null = null;
  if (more && last) {
    nextCursor = encodeCursor(
      order === "newest"
        ? { order, id: Number(last.id) }
        : { order, runAt: last.run_at_exact as string, id: Number(last.id) },
    );
  }
  return { jobs: page.map(toSummary), nextCursor };
}

/** A job in full, as `show` prints it and the dashboard's detail page shows it. */
export interface JobDetail extends Job {
  /** For a periodic occurrence: its rule. */
  rule: RuleView | null;
  /** The slot a periodic occurrence stands for (its `run_at` moves on retry; this does not). */
  slotAt: Date | null;
  /** When a cancel was asked of it while it ran. */
  cancelRequestedAt: Date | null;
  /** True when it comes from a declared schedule list. */
  declared: boolean;
  /** Other jobs with the same key, newest first (finished occurrences of a schedule, earlier runs of a keyed job). */
  history: JobSummary[];
}

/** How a job is addressed: its id, or its key (the live job, else the newest finished one). */
export type JobRef = { id: number } | { key: string };

/** The default and largest number of other jobs of a key that `getJob` returns. */
export const HISTORY_DEFAULT = 20;
export const HISTORY_MAX = 1000;

const historySchema = z
  .int({ error: "must be an integer" })
  .min(0, "must be 0 or more")
  .max(HISTORY_MAX, `must be at most ${HISTORY_MAX}`)
  .default(HISTORY_DEFAULT);

/**
 * One job in full: payload, attempts, timestamps, last error and stack, its rule if
 * periodic, and (when it has a key) the other jobs with that key, newest first. By key,
 * the job is the live one, else the newest finished one (as `client.get`). Null when
 * there is none.
 *
 * @example
 * const job = await getJob(pool, { key: "welcome:ada" });
 * console.log(job?.state, job?.lastError, job?.history.length);
 */
export async function getJob(
  executor: Executor,
  ref: JobRef,
  options: { historyLimit?: number } = {},
): Promise<JobDetail | null> {
  const id = await resolveJobRef(toQueryable(executor), ref);
  if (id === null) return null;
  const parsedHistory = historySchema.safeParse(options.historyLimit);
  if (!parsedHistory.success) throw zodError("historyLimit", parsedHistory.error);
  const db = toQueryable(executor);
  const [row] = await db.query(
    `select ${JOB_COLUMNS}, cron, tz, every_ms, fixed_delay, missed, slot_at, cancel_requested_at, declared
     from punctual.jobs where id = $1`,
    [id],
  );
  if (!row) return null;
  const history =
    row.key === null || parsedHistory.data === 0
      ? []
      : await db.query(
          // The key index (key, id), read backwards from the newest.
          `select ${SUMMARY_COLUMNS("j")} from punctual.jobs as j
           where j.key = $1 and j.id <> $2 order by j.id desc limit $3`,
          [row.key, id, parsedHistory.data],
        );
  return {
    ...toJob(row),
    rule: ruleView(row as never),
    slotAt: (row.slot_at as Date | null) ?? null,
    cancelRequestedAt: (row.cancel_requested_at as Date | null) ?? null,
    declared: row.declared as boolean,
    history: history.map(toSummary),
  };
}

const refSchema = z.union([
  z.strictObject({ id: z.int({ error: "must be an integer job id" }).positive("must be a positive job id") }),
  z.strictObject({ key: storableString("must be a non-empty key").min(1, "must be a non-empty key") }),
], { error: "give { id } or { key }" });

/** Checks a job reference; a `ValidationError` names `id` or `key`. */
export function checkJobRef(ref: JobRef): JobRef {
  const parsed = refSchema.safeParse(ref);
  if (!parsed.success) throw zodError("", parsed.error);
  return parsed.data;
}

/**
 * The id a reference points at, or null. By key: the live job, else the newest
 * finished one (`jobGetByKey`, the lookup `client.get` makes).
 */
export async function resolveJobRef(db: Queryable, ref: JobRef): Promise<number | null> {
  const checked = checkJobRef(ref);
  if ("id" in checked) return checked.id;
  const row = await jobGetByKey(db, checked.key);
  return row ? Number(row.id) : null;
}

/** Maps a row selected with `SUMMARY_COLUMNS`. */
export function toSummary(row: Record<string, unknown>): JobSummary {
  return {
    id: Number(row.id),
    task: row.task as string,
    queue: row.queue as string,
    key: (row.key as string | null) ?? null,
    state: row.state as JobState,
    priority: row.priority as number,
    runAt: row.run_at as Date,
    attempts: row.attempts as number,
    maxAttempts: row.max_attempts as number,
    lastError: (row.last_error as string | null) ?? null,
    lockedBy: (row.locked_by as string | null) ?? null,
    startedAt: (row.started_at as Date | null) ?? null,
    finishedAt: (row.finished_at as Date | null) ?? null,
    createdAt: row.created_at as Date,
    periodic: row.periodic as boolean,
  };
}
