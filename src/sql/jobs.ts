/**
 * Every runtime statement on `punctual.jobs`, one function each. Values always travel
 * as parameters; the only text spliced in is Punctual's own constants.
 */
import type { Queryable } from "../executor.js";
import { JOB_COLUMNS } from "../job.js";
import { PRIORITY_MAX, PRIORITY_MIN, type JobState } from "../schema.js";
import type { MissedPolicy } from "../schedule/rule.js";
import type { TraceCarrier } from "../otel.js";
import { ONE_ROW_PAYLOAD_MAX_CHARS } from "./enqueue-one.js";

/** One job for `jobEnqueueMany`, in the column names of `punctual.enqueue_many`. */
export interface JobInsert {
  task: string;
  payload: unknown;
  queue?: string;
  key?: string | null;
  priority?: number;
  run_at?: Date | null;
  max_attempts?: number;
}

export interface EnqueueRow {
  id: string | null;
  key: string | null;
  state: JobState | null;
  run_at: Date | null;
  outcome: "inserted" | "replaced" | "kept";
}

/**
 * A timestamp (or an interval) as milliseconds, float8 (null stays null), for
 * statements that return one per row: the driver parses a float8 with parseFloat, a
 * timestamp's text with a regular-expression parser, which was a tenth of a 1,000-job
 * enqueue's Node time and the costliest part of reading a claim.
 */
const EPOCH_MS = (expression: string) => `(extract(epoch from ${expression}) * 1000)::float8`;

/**
 * Inserts jobs. A batch without keys is a plain INSERT (`INSERT_UNKEYED`: no key, so
 * nothing to replace or keep). A batch with keys goes through `punctual.enqueue_many`
 * (drizzle/0001_enqueue_functions.sql), which holds the key semantics for SQL and
 * TypeScript callers alike. The jobs come checked by the client, so both skip the SQL
 * checks (`enqueue_many_unchecked`, drizzle/0010), unless a payload is long enough for
 * the database's size check to judge it otherwise than the client's (see
 * ONE_ROW_PAYLOAD_MAX_CHARS): then the batch goes through `enqueue_many`. `payloadsJson`
 * are already-serialised payloads, spliced into the array as raw JSON. `traceContext`,
 * the caller's OpenTelemetry context (null without one), goes on every job written
 * (drizzle/0010).
 */
export async function jobEnqueueMany(
  db: Queryable,
  jobs: readonly JobInsert[],
  payloadsJson: readonly string[],
  onConflict: "replace" | "keep",
  traceContext: TraceCarrier | null = null,
): Promise<EnqueueRow[]> {
  // Build the JSON array by hand so each payload's text is embedded once, verbatim,
  // instead of being parsed and serialised again.
  const elements = jobs.map((job, i) => {
    const { payload: _payload, ...fields } = job;
    const head = JSON.stringify(fields);
    return `${head.slice(0, -1)}${head.length > 2 ? "," : ""}"payload":${payloadsJson[i]}}`;
  });
  const array = `[${elements.join(",")}]`;
  const trace = traceContext && JSON.stringify(traceContext);
  const checked = payloadsJson.some((json) => json.length > ONE_ROW_PAYLOAD_MAX_CHARS);
  if (!checked && jobs.every((job) => job.key === null || job.key === undefined)) {
    // No keys: nothing to replace or keep, every job is inserted.
    const rows = await db.query<{ id: string; run_at: number } & Record<string, unknown>>(INSERT_UNKEYED, [array, trace], "enqueue_unkeyed");
    return rows.map((row) => ({ id: row.id, key: null, state: "pending", run_at: new Date(row.run_at), outcome: "inserted" }));
  }
  const rows = await db.query<Omit<EnqueueRow, "run_at"> & { run_at: number | null } & Record<string, unknown>>(
    `select id, key, state, ${EPOCH_MS("run_at")} as run_at, outcome
     from punctual.${checked ? "enqueue_many" : "enqueue_many_unchecked"}($1::jsonb, $2, $3::jsonb) order by ord`,
    [array, onConflict, trace],
  );
  return rows.map((row) => ({ ...row, run_at: row.run_at === null ? null : new Date(row.run_at) }));
}

/**
 * `jobEnqueueMany` for a batch without keys, checked by the client: a plain INSERT of
 * the jobs, as `enqueue_many_unchecked` would insert them (same defaults, the trace
 * context $2 on every job), without what keys need: no ON CONFLICT (whose speculative
 * insertion costs every row, keyed or not), no joins to match rows back to their
 * input. A third less PostgreSQL time per 1,000-job batch (bench/profile-enqueue.ts).
 * Ids are drawn in input order (`ord`), so ordered by id the rows come back in it.
 */
const INSERT_UNKEYED = `
  with written as (
    insert into punctual.jobs (task, payload, queue, priority, run_at, max_attempts, trace_context)
    select i.task, coalesce(i.payload, '{}'), coalesce(i.queue, 'default'), coalesce(i.priority, 0),
           coalesce(i.run_at, now()), coalesce(i.max_attempts, 5), $2::jsonb
    from rows from (jsonb_to_recordset($1::jsonb) as (task text, payload jsonb, queue text, priority smallint,
                                                      run_at timestamptz, max_attempts integer))
         with ordinality as i(task, payload, queue, priority, run_at, max_attempts, ord)
    order by i.ord
    returning id, run_at
  )
  select id, ${EPOCH_MS("run_at")} as run_at from written order by id`;

/** The live (pending or running) job with a key, if any. */
export async function jobGetLiveByKey(db: Queryable, key: string) {
  const rows = await db.query(
    `select ${JOB_COLUMNS}, slot_at from punctual.jobs where key = $1 and state in ('pending', 'running')`,
    [key],
  );
  return rows[0];
}

/** The job with a key: the live one, else the most recent finished one. */
export async function jobGetByKey(db: Queryable, key: string) {
  const rows = await db.query(
    `select ${JOB_COLUMNS} from punctual.jobs where key = $1
     order by state in ('pending', 'running') desc, id desc limit 1`,
    [key],
  );
  return rows[0];
}

export async function jobGetById(db: Queryable, id: number) {
  const rows = await db.query(`select ${JOB_COLUMNS} from punctual.jobs where id = $1`, [id]);
  return rows[0];
}

/**
 * Cancels the live job with a key. A pending job becomes `cancelled` at once; a running
 * one is marked (`cancel_requested_at`): its handler may finish, and nothing follows it.
 */
export async function jobCancelByKey(db: Queryable, key: string) {
  return db.query<{ id: string; state: JobState }>(
    `update punctual.jobs
     set state = case when state = 'pending' then 'cancelled'::punctual.job_state else state end,
         finished_at = case when state = 'pending' then now() else finished_at end,
         cancel_requested_at = now(), updated_at = now()
     where key = $1 and state in ('pending', 'running')
     returning id, state`,
    [key],
  );
}

/** A claimed job, as the worker needs it. */
export interface ClaimedRow {
  id: string;
  task: string;
  queue: string;
  payload: unknown;
  key: string | null;
  priority: number;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  // The periodic rule (all null / false / 'once' for a one-off job) and its slot.
  cron: string | null;
  tz: string | null;
  every_ms: string | null;
  fixed_delay: boolean;
  missed: MissedPolicy;
  slot_at: Date | null;
  /** Marked started by the claim (it takes a free slot at once); else it waits in the buffer. */
  started: boolean;
  /** The enqueuer's W3C trace context (src/otel.ts), or null: what the run span links to. */
  trace_context: TraceCarrier | null;
  /**
   * Milliseconds from the database's clock as the claim answered to the job's run_at
   * (negative once due): when a job claimed early is due, in this process's terms.
   */
  due_in_ms: number;
}

/**
 * Claims up to `limit` due jobs for `workerId`, most urgent first, and leases them.
 *
 * Shape: the claim index is (priority, run_at, id) over pending rows only. A plain
 * `order by priority, run_at` would walk every future-dated row of the first priority
 * before reaching due rows of the next one, so the query probes each priority in turn
 * (a lateral join over the fixed priority range) with `run_at <= now` bounding each
 * probe: the work is proportional to the jobs claimed, not to the rows waiting for the
 * future, and finished rows are not in the index at all. SKIP LOCKED lets any number
 * of workers claim at once without waiting on each other; the outer LIMIT stops
 * probing as soon as enough rows are locked.
 */
export interface ClaimParams {
  workerId: string;
  queues: readonly string[];
  tasks: readonly string[];
  limit: number;
  leaseMs: number;
  /**
   * How many of the claimed jobs start at once (the worker's free slots): those get
   * `started_at`; the rest wait in the worker's buffer with `started_at` null.
   * Default: all of them.
   */
  startNow?: number;
  /**
   * Also claim jobs due within this many milliseconds (by the database's clock): they
   * wait in the worker's buffer, not started, until their `run_at`. Default 0: only
   * jobs due now.
   */
  leadMs?: number;
}

/**
 * The claim as an UPDATE, parameters $1 worker, $2 queues, $3 tasks, $4 lease ms, $5
 * how many start at once, $6 lead ms (jobs due that soon are claimed too; they start
 * at once only if already due). The limit is written into the text (one prepared statement
 * per limit, and the worker uses a few limits only) so that PostgreSQL's cached
 * generic plan knows it: with "limit $n" it would guess at a large share of the table
 * and plan a scan of it. The ids are collected first, as an array in claim order, so
 * the update is an index lookup of exactly those rows, and the first $5 of them are
 * marked started.
 */
function claimUpdate(limit: number) {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`claim limit must be a positive integer, not ${limit}`);
  return `update punctual.jobs as j
     set state = 'running', attempts = j.attempts + 1, locked_by = $1,
         locked_until = now() + $4 * interval '1 millisecond',
         started_at = case when c.pos <= $5 and j.run_at <= now() then now() end, updated_at = now()
     from unnest(array(
       select due.id
       from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
       cross join lateral (
         select id from punctual.jobs
         where state = 'pending' and priority = p.priority and run_at <= now() + $6 * interval '1 millisecond'
           and queue = any($2::text[]) and task = any($3::text[])
         order by run_at, id
         limit ${limit}
         for update skip locked
       ) as due
       limit ${limit}
     )) with ordinality as c(id, pos)
     where j.id = c.id
     returning j.id, j.task, j.queue, j.payload, j.key, j.priority, j.run_at, j.attempts, j.max_attempts,
               j.cron, j.tz, j.every_ms, j.fixed_delay, j.missed, j.slot_at, j.started_at is not null as started,
               j.trace_context, c.pos`;
}

/**
 * What the claiming statements return for claimed rows `c` (from `claimUpdate`'s
 * RETURNING). `run_at` travels as epoch milliseconds and the clock as `due_in_ms`
 * (see EPOCH_MS); `claimedRows` makes `run_at` a Date again.
 */
const CLAIMED_COLUMNS = (c: string) => `${c}.id, ${c}.task, ${c}.queue, ${c}.payload, ${c}.key, ${c}.priority,
  ${EPOCH_MS(`${c}.run_at`)} as run_at, ${c}.attempts, ${c}.max_attempts,
  ${c}.cron, ${c}.tz, ${c}.every_ms, ${c}.fixed_delay, ${c}.missed, ${c}.slot_at, ${c}.started, ${c}.trace_context,
  ${EPOCH_MS(`${c}.run_at - clock_timestamp()`)} as due_in_ms`;

type ClaimedRowRead = Omit<ClaimedRow, "run_at"> & { run_at: number | Date };

/**
 * Rows read with CLAIMED_COLUMNS as ClaimedRow, in the order claimed jobs start in: most
 * urgent first (priority, run_at, id). An UPDATE's RETURNING follows no order, and
 * sorted by the statement, each row would be copied into the sort's memory (with a
 * completion's arrays beside it, 28 MB of temporary file for a 1,736-job claim); here
 * rows that come in order (they mostly do) cost one comparison each. In place: a claim
 * can be thousands of rows.
 */
function claimedRows<R extends ClaimedRowRead>(rows: R[]): (R & ClaimedRow)[] {
  rows.sort(
    (a, b) => a.priority - b.priority || (a.run_at as number) - (b.run_at as number) || Number(a.id) - Number(b.id),
  );
  for (const row of rows) row.run_at = new Date(row.run_at as number);
  return rows as (R & ClaimedRow)[];
}

const claimValues = (p: ClaimParams) => [p.workerId, p.queues, p.tasks, p.leaseMs, p.startNow ?? p.limit, p.leadMs ?? 0];

export async function jobClaim(db: Queryable, params: ClaimParams): Promise<ClaimedRow[]> {
  const rows = await db.query<ClaimedRowRead & Record<string, unknown>>(
    `with claimed as (${claimUpdate(params.limit)})
     select ${CLAIMED_COLUMNS("c")} from claimed as c`,
    claimValues(params),
    `claim_${params.limit}`,
  );
  return claimedRows(rows);
}

/**
 * Records successes and claims the next jobs in one statement, so that under load one
 * round trip (and one commit) serves both: the worker's hot path. `deleteOneOff` as in
 * `jobCompleteMany`. The successes are
 * fenced and followed by their next occurrence exactly as in `jobCompleteMany`; the
 * claim is `jobClaim`'s. Neither sees the other's rows (one snapshot: the completed
 * rows are running, not pending, and a next occurrence inserted here is claimed by a
 * later statement).
 *
 * The claim runs first (`union all` runs its branches in order), as the statement
 * starts, and the outcomes are written after it. The other way round (as with the
 * full join this statement had), two workers fell into a convoy: the outcome writes
 * can wait for a row lock, and a claim that scans after that wait, on the snapshot
 * taken before it, meets the jobs another worker claimed meanwhile still looking
 * pending. PostgreSQL then locks each one's newest version before finding it running
 * and passing over it (READ COMMITTED's recheck of SELECT FOR UPDATE), and those locks
 * hold until this statement commits: the other worker's next statement, recording
 * those very jobs' outcomes, waits for this one, and its own claim, after the wait,
 * does the same to this worker. Sampled in `bench/profile-process.ts` (WAITS=1, two
 * worker processes), this statement waited on another's transaction for 18–20% of its
 * time in that order, 2–4% in this one. The answer is the claimed jobs, then one row
 * (id null) saying what was recorded.
 */
export async function jobCompleteAndClaim(
  db: Queryable,
  params: ClaimParams,
  successes: readonly (HeldJob & NextOccurrence & StartedAgo)[],
  deleteOneOff = false,
): Promise<{ claimed: ClaimedRow[]; completed: HeldJob[] | "all" }> {
  const done = recordSuccesses(7, successes, deleteOneOff);
  const rows = await db.query<
    ClaimedRowRead & { done_all: boolean | null; done_ids: string[] | null; done_attempts: number[] | null } & Record<string, unknown>
  >(
    `with ${done.ctes},
     claimed as (${claimUpdate(params.limit)})
     select null::boolean as done_all, null::bigint[] as done_ids, null::integer[] as done_attempts, ${CLAIMED_COLUMNS("c")}
     from claimed as c
     union all
     select d.*, ${CLAIMED_COLUMNS("c")}
     from (select count(*) = ${done.sent}, case when count(*) < ${done.sent} then array_agg(id) end,
                  case when count(*) < ${done.sent} then array_agg(attempts) end
           from done) as d
     left join claimed as c on false`,
    [...claimValues(params), ...done.values],
    `complete_claim${done.variant}_${params.limit}`,
  );
  const recorded = rows.find((r) => r.done_all !== null);
  return {
    claimed: claimedRows(rows.filter((r) => r.id !== null)),
    completed: recorded?.done_all ? "all" : (recorded?.done_ids ?? []).map((id, i) => ({ id: Number(id), attempt: recorded!.done_attempts![i]! })),
  };
}

/**
 * What a worker knows of a periodic occurrence when it records the outcome: the next
 * slot it computed, and the rule it computed it from.
 */
export interface NextOccurrence {
  next_slot: Date | null;
  cron: string | null;
  tz: string | null;
  every_ms: string | null;
  fixed_delay: boolean;
}

/**
 * Inserts the next occurrence of each finished periodic row in `finished` (a CTE that
 * returns finished rows plus the worker's NextOccurrence fields), in the statement that
 * records the outcome: a schedule always has exactly one live row, and no crash can
 * fall between the two writes. When the rule changed while the occurrence ran (a
 * `schedule` call), the worker's slot is stale: the next row is then due now without a
 * slot, and the worker that claims it places it on the new rule's first slot.
 */
const INSERT_NEXT_OCCURRENCE = (finished: string) => `
  insert into punctual.jobs (task, payload, queue, key, priority, max_attempts, cron, tz, every_ms,
                             fixed_delay, missed, declared, slot_at, run_at)
  select f.task, f.payload, f.queue, f.key, f.priority, f.max_attempts, f.cron, f.tz, f.every_ms,
         f.fixed_delay, f.missed, f.declared,
         case when f.rule_unchanged then f.next_slot end,
         case when f.rule_unchanged and f.next_slot is not null then f.next_slot else now() end
  from ${finished} as f
  where (f.cron is not null or f.every_ms is not null) and f.cancel_requested_at is null
    -- No slot under an unchanged rule: the worker found the rule unusable; the schedule ends.
    and (f.next_slot is not null or not f.rule_unchanged)`;

/**
 * The rows of JSON parameter `param` (columns `columns`, with `id` and `attempt`) as
 * `alias`, for statements fenced with `FENCED`: beside each row, the values the fence
 * compares with (see there).
 */
const fencedInput = (param: string, alias: string, columns: string) =>
  fencedRows(`jsonb_to_recordset(${param}::jsonb) as x(${columns})`, alias);

/**
 * Held jobs given as three array parameters from `$first` on (`heldValues`), as rows
 * `alias` (id, attempt, started_ago_ms, and `result` null) for statements fenced with
 * `FENCED`: read for a fraction of what JSON costs (see `punctual.held_jobs`, migration
 * 0012), for the statements a busy worker sends most. Were the function inlined (not
 * STRICT), the planner would count the arrays and scan the table instead of looking
 * each job up (`test/integration/fresh-backlog.test.ts` fails then).
 */
const heldInput = (first: number, alias: string) =>
  fencedRows(`punctual.held_jobs($${first}::bigint[], $${first + 1}::integer[], $${first + 2}::integer[]) as x`, alias, ", null::jsonb as result");

/**
 * `heldInput`'s parameters: ids, attempts and how long ago each started (null: its claim
 * marked it), as array literals written here: pg's own serializer builds a string per
 * element (in a heap profile, a tenth of what a worker allocated per job).
 */
const heldValues = (held: readonly (HeldJob & StartedAgo)[]) => [
  arrayLiteral(held.map((h) => h.id)),
  arrayLiteral(held.map((h) => h.attempt)),
  arrayLiteral(held.map((h) => h.started_ago_ms ?? null)),
];

/** A PostgreSQL array literal of integers, null as NULL. */
const arrayLiteral = (values: readonly (number | null)[]) => `{${values.map((v) => (v === null ? "NULL" : v)).join(",")}}`;

/** The rows of `source` (a FROM item named x) as `alias`, with the fence's values beside them, and `extra` columns. */
const fencedRows = (source: string, alias: string, extra = "") =>
  `(select x.*${extra}, 'running'::text as fence_state, $1::text as fence_worker from ${source} offset 0) as ${alias}`;

/**
 * The outcomes in JSON parameter `param`, as rows `i` (with `extra` columns).
 * `result` is absent from an outcome that has none (most): it reads as null, and the
 * JSON parameter carries nothing for it.
 */
const outcomeInput = (param: string, extra = "") =>
  fencedInput(
    param,
    "i",
    `id bigint, attempt integer, next_slot timestamptz, cron text, tz text, every_ms bigint, fixed_delay boolean,
     started_ago_ms integer, result jsonb${extra}`,
  );

/**
 * `started_at` of a job that started from the worker's buffer: the claim left it null,
 * and the worker sends how long ago the handler started with its outcome or lease
 * renewal (no round trip of its own). A job marked started by its claim keeps that time.
 */
const STARTED_AT = (row: string, input: string) =>
  `started_at = coalesce(${row}.started_at, now() - ${input}.started_ago_ms * interval '1 millisecond')`;

/**
 * The fence every outcome, renewal and release passes: the row must still run under
 * this worker's lease, and for the same attempt. The attempt matters when a worker's
 * heartbeats failed, its job was rescued, and the same worker claimed it again: the
 * first attempt's late outcome must not complete the second.
 */
/*
 * Every comparison of the fence is with a column of the input (`fencedInput`), which
 * `offset 0` keeps a subquery of its own, not with a constant: so none of them is a
 * condition on the jobs table alone, and the planner cannot drive the statement from
 * a scan of the table it guessed would match a row or two. On a table never analyzed (a
 * backlog enqueued and processed before autovacuum came by) it did: `state = 'running'
 * and locked_by = $1` guessed at one row, and every running row was then tested against
 * every input row (7.4 s for 6,624 outcomes; 50 ms for 256 when the fence matched the
 * partial lease index instead). The one plan left is the one wanted: for each input
 * row, look its id up by primary key (or, for most of a small table, one hash join).
 *
 * The input rows come as JSON (`jsonb_to_recordset`), whose row count the planner
 * does not know. Given as arrays (`unnest`), it knows it, and for a few hundred rows on
 * a table of 100,000 chose to scan the whole table (250 ms for 731 outcomes); with
 * `j.id = any(ids)` beside the join, it fetched the rows by that list and scanned the
 * whole input again for each (8 ms instead of 1.4 ms for a 200-job renewal).
 */
const FENCED = (row: string, input: string) =>
  `${row}.id = ${input}.id and ${row}.state::text = ${input}.fence_state and ${row}.locked_by = ${input}.fence_worker
   and ${row}.attempts = ${input}.attempt`;

const RULE_UNCHANGED = `(j.cron, j.tz, j.every_ms, j.fixed_delay)
  is not distinct from (i.cron, i.tz, i.every_ms, i.fixed_delay) as rule_unchanged`;

/**
 * Marks running jobs of worker $1 succeeded; `input` is the outcomes as rows `i` (`outcomeInput`).
 * `result` becomes this attempt's (null when it left none): the column holds what the
 * last attempt left, never an earlier attempt's.
 */
const COMPLETE_UPDATE = (input: string) => `
  update punctual.jobs as j
  set state = 'succeeded', finished_at = now(), locked_by = null, locked_until = null, updated_at = now(),
      result = i.result, ${STARTED_AT("j", "i")}
  from ${input}
  where ${FENCED("j", "i")}
  returning j.*, i.next_slot, ${RULE_UNCHANGED}`;

/**
 * `COMPLETE_UPDATE` for successes of one-off jobs (no rule: no next occurrence to
 * insert), returning only what the answer needs instead of whole rows; `input` as rows `i`
 * (`heldInput`, or `outcomeInput` when a result is kept).
 */
const COMPLETE_ONE_OFF = (input: string) => `
  update punctual.jobs as j
  set state = 'succeeded', finished_at = now(), locked_by = null, locked_until = null, updated_at = now(),
      result = i.result, ${STARTED_AT("j", "i")}
  from ${input}
  where ${FENCED("j", "i")}
  returning j.id, j.attempts`;

/**
 * Successes of one-off jobs under `retention: 0`: the row is deleted as its success is
 * recorded, fenced the same way, instead of being marked succeeded for the pruner to
 * delete later: one write per job fewer (in `bench/profile-process.ts`, 23% less
 * PostgreSQL CPU per job and 38% less WAL).
 */
const DELETE_ONE_OFF = (input: string) => `
  delete from punctual.jobs as j
  using ${input}
  where ${FENCED("j", "i")}
  returning j.id, j.attempts`;

/**
 * The CTEs that record `successes` from parameter `$first` on, for `jobCompleteMany` and
 * `jobCompleteAndClaim`: `done` returns each recorded job's id and attempts, and, when a
 * success carries a rule, `next` inserts the next occurrences and returns their run_at.
 * Only one-off successes (the common case): no next-occurrence INSERT (nor the trigger
 * it fires), the jobs come as arrays (`heldInput`) unless one left a `result` to keep,
 * and with `deleteOneOff` (`retention: 0`) their rows are deleted. A batch with a
 * periodic success is written as usual, one-off ones included, and pruned. `variant`
 * tells them apart in the statements' prepared names ("" for one-off successes); `sent`
 * is how many successes the parameters carry, in SQL.
 */
function recordSuccesses(first: number, successes: readonly (HeldJob & NextOccurrence & StartedAgo)[], deleteOneOff: boolean) {
  const sorted = byId(successes);
  const asJson = (rows: readonly object[]) => ({ values: [JSON.stringify(rows)], sent: `jsonb_array_length($${first}::jsonb)` });
  const asArrays = () => ({ values: heldValues(sorted), sent: `cardinality($${first}::bigint[])` });
  if (successes.some((s) => s.cron !== null || s.every_ms !== null)) {
    const ctes = `done as (${COMPLETE_UPDATE(outcomeInput(`$${first}`))}), next as (${INSERT_NEXT_OCCURRENCE("done")} returning run_at)`;
    return { variant: "_periodic", ctes, ...asJson(sorted) };
  }
  if (deleteOneOff) return { variant: "_delete", ctes: `done as (${DELETE_ONE_OFF(heldInput(first, "i"))})`, ...asArrays() };
  if (successes.every((s) => s.result === undefined)) {
    return { variant: "", ctes: `done as (${COMPLETE_ONE_OFF(heldInput(first, "i"))})`, ...asArrays() };
  }
  // One-off successes, some with a result to keep: JSON carries it. The rule fields are
  // all null, so they stay home.
  const rows = sorted.map((s) => ({ id: s.id, attempt: s.attempt, started_ago_ms: s.started_ago_ms, result: s.result }));
  return { variant: "_results", ctes: `done as (${COMPLETE_ONE_OFF(outcomeInput(`$${first}`))})`, ...asJson(rows) };
}

/**
 * `rows` in id order. The statements that write outcomes and renew leases run side by
 * side on different connections (renewals have their own) and may touch the same
 * rows. Their plans visit the input (or the primary key) in order, so given ids in
 * the same order they take the row locks in the same order instead of deadlocking
 * (40P01, seen between a completion and a renewal when the orders differed).
 */
function byId<T extends { id: number }>(rows: readonly T[]): T[] {
  return [...rows].sort((a, b) => a.id - b.id);
}

/** A job as this worker holds it: its id and the attempt it runs. */
export interface HeldJob {
  id: number;
  attempt: number;
}

/**
 * An outcome's own fields beside the job: how long ago its handler started (null: its
 * claim marked it started), and what the attempt left for the `result` column (a JSON
 * value already made storable; absent or undefined: none, and the column becomes null).
 */
export interface StartedAgo {
  started_ago_ms?: number | null;
  result?: unknown;
}

/**
 * What an outcome statement tells the worker besides the jobs it recorded: the
 * earliest `run_at` it wrote for a job to run again (a next occurrence, a retry; null
 * when none), and the database's clock as it answered (null when nothing runs again). The worker sets its timer for
 * that `run_at` (see `Wakeups.dueAt`), so these jobs start on time without LISTEN (poll-only,
 * behind PgBouncer) at no extra round trip. Later ones are found by the look-ahead
 * that follows the claim this timer makes.
 */
export interface RunAgainAt {
  nextRunAt: Date | null;
  dbNow: Date | null;
}

/**
 * Records successes, and inserts the next occurrence of periodic jobs. Fenced on the
 * lease and the attempt: only jobs still running under `workerId`, in the attempt that
 * succeeded, change, so a worker whose lease was taken over cannot overwrite the new
 * owner's outcome. Returns one row per recorded job; `nextRunAt` and `dbNow` are the
 * statement's (the same on every row): see `RunAgainAt`. `deleteOneOff` (`retention:
 * 0`): see `recordSuccesses`.
 */
export async function jobCompleteMany(
  db: Queryable,
  workerId: string,
  jobs: readonly (HeldJob & NextOccurrence & StartedAgo)[],
  deleteOneOff = false,
): Promise<(HeldJob & RunAgainAt)[]> {
  const done = recordSuccesses(2, jobs, deleteOneOff);
  const rows = await db.query<{ id: string; attempts: number; next_run_at: Date | null; db_now: Date }>(
    `with ${done.ctes}
     select d.id, d.attempts, ${
       done.variant === "_periodic"
         ? "(select min(n.run_at) from next as n) as next_run_at, clock_timestamp() as db_now"
         : // Nothing runs again: no clock to read (a timestamp per row costs the worker a parse).
           "null::timestamptz as next_run_at, null::timestamptz as db_now"
     }
     from done as d`,
    [workerId, ...done.values],
    `complete${done.variant}`,
  );
  return rows.map((r) => ({ id: Number(r.id), attempt: r.attempts, nextRunAt: r.next_run_at, dbNow: r.db_now }));
}

/** One failed attempt for `jobFailMany`. */
export interface JobFailure extends NextOccurrence, HeldJob, StartedAgo {
  message: string;
  stack: string | null;
  /** Delay before the retry, when attempts remain: an integer from 0 to 2^31 - 1. */
  retry_delay_ms: number;
  /** False for failures that no retry can fix (a payload that fails its schema). */
  retryable: boolean;
}

/**
 * Records failed attempts, fenced like `jobCompleteMany`. A job with attempts left
 * (and no cancel request) goes back to pending at now + its delay, keeping its slot;
 * otherwise it ends `failed`, or `cancelled` when a cancel was requested while it ran.
 * A periodic job that ends `failed` gets its next occurrence, as on success. The last
 * error is kept on the row either way, and `result` becomes this attempt's (null if
 * none). Returns one row per recorded job: its new state and `run_at` (a retry's is
 * when it runs again), and, the same on every row, the earliest `run_at` of a job to
 * run again (retry or next occurrence) and the database's clock: see `RunAgainAt`.
 */
export async function jobFailMany(db: Queryable, workerId: string, failures: readonly JobFailure[]) {
  return db.query<{ id: string; attempts: number; state: JobState; run_at: Date; next_run_at: Date | null; db_now: Date }>(
    `with failed as (
       update punctual.jobs as j
       set state = case
             when j.cancel_requested_at is not null then 'cancelled'::punctual.job_state
             when i.retryable and j.attempts < j.max_attempts then 'pending'::punctual.job_state
             else 'failed'::punctual.job_state end,
           run_at = case when i.retryable and j.attempts < j.max_attempts and j.cancel_requested_at is null
             then now() + i.retry_delay_ms * interval '1 millisecond' else j.run_at end,
           finished_at = case when i.retryable and j.attempts < j.max_attempts and j.cancel_requested_at is null
             then null else now() end,
           last_error = i.message, last_error_stack = i.stack, result = i.result,
           locked_by = null, locked_until = null, updated_at = now(), ${STARTED_AT("j", "i")}
       from ${outcomeInput("$2", ", message text, stack text, retry_delay_ms integer, retryable boolean")}
       where ${FENCED("j", "i")}
       returning j.*, i.next_slot, ${RULE_UNCHANGED}
     ),
     next as (${INSERT_NEXT_OCCURRENCE("(select * from failed where state = 'failed')")} returning run_at)
     select id, attempts, state, run_at,
            (select min(again.run_at)
             from (select run_at from failed where state = 'pending' union all select run_at from next) as again) as next_run_at,
            clock_timestamp() as db_now
     from failed`,
    [workerId, JSON.stringify(byId(failures))],
  );
}

/**
 * Puts claimed periodic rows back to pending on a slot without running them: a row
 * written by SQL (no slot yet), or a missed occurrence under the `skip` policy. The
 * claim's attempt is given back. Fenced like `jobCompleteMany`.
 */
export async function jobPlaceMany(db: Queryable, workerId: string, placements: readonly (HeldJob & { slot: Date })[]) {
  const rows = await db.query<{ id: string; attempt: number }>(
    `update punctual.jobs as j
     set state = 'pending', slot_at = p.slot, run_at = p.slot, attempts = greatest(j.attempts - 1, 0),
         locked_by = null, locked_until = null, started_at = null, updated_at = now()
     from ${fencedInput("$2", "p", "id bigint, attempt integer, slot timestamptz")}
     where ${FENCED("j", "p")}
     returning j.id, p.attempt`,
    [workerId, JSON.stringify(byId(placements))],
  );
  return rows.map((r): HeldJob => ({ id: Number(r.id), attempt: r.attempt }));
}

/**
 * Hands running jobs back to pending, due now, without waiting for their lease to
 * expire: used when a worker stops with handlers that did not finish in time. The
 * attempt counts. Fenced like `jobCompleteMany`.
 */
export async function jobReleaseMany(db: Queryable, workerId: string, held: readonly HeldJob[]) {
  const rows = await db.query<{ id: string }>(
    `update punctual.jobs as j
     set state = 'pending', run_at = now(), locked_by = null, locked_until = null, updated_at = now(),
         last_error = 'released: the worker stopped before the handler finished'
     from ${fencedInput("$2", "h", "id bigint, attempt integer")}
     where ${FENCED("j", "h")}
     returning j.id`,
    [workerId, JSON.stringify(byId(held))],
  );
  return rows.map((r) => Number(r.id));
}

/**
 * Renews the leases of a worker's jobs, all in one statement (the heartbeat): running
 * ones and those waiting in its buffer. A job started from the buffer since the last
 * renewal gets its `started_at` here (`startedAgoMs`, null for the others). Returns the
 * jobs still held, and whether a cancel was requested for each; a job missing from the
 * answer was taken from this worker (its lease expired and another worker rescued it).
 */
export async function jobRenewLeases(
  db: Queryable,
  workerId: string,
  held: readonly (HeldJob & { startedAgoMs: number | null })[],
  leaseMs: number,
) {
  const rows = await db.query<{ id: string; cancel_requested: boolean }>(
    `update punctual.jobs as j
     set locked_until = now() + $2 * interval '1 millisecond', ${STARTED_AT("j", "h")}
     from ${heldInput(3, "h")}
     where ${FENCED("j", "h")}
     returning j.id, j.cancel_requested_at is not null as cancel_requested`,
    [workerId, leaseMs, ...heldValues(byId(held).map((h) => ({ id: h.id, attempt: h.attempt, started_ago_ms: h.startedAgoMs })))],
    "renew_leases",
  );
  return rows.map((r) => ({ id: Number(r.id), cancelRequested: r.cancel_requested }));
}

/**
 * Hands claimed jobs that never started (waiting in a worker's buffer) back to pending,
 * as if never claimed: their attempt does not count, `started_at` stays null, and
 * `run_at` is unchanged, so they keep their place in line. A cancel requested while
 * they waited ends them `cancelled`. Fenced like `jobCompleteMany`, and only rows not
 * marked started are touched. Returns the ids handed back.
 */
export async function jobUnclaimMany(db: Queryable, workerId: string, held: readonly HeldJob[]) {
  const rows = await db.query<{ id: string }>(
    `update punctual.jobs as j
     set state = case when j.cancel_requested_at is null then 'pending' else 'cancelled' end::punctual.job_state,
         finished_at = case when j.cancel_requested_at is null then null else now() end,
         attempts = greatest(j.attempts - 1, 0), locked_by = null, locked_until = null, updated_at = now()
     from ${fencedInput("$2", "h", "id bigint, attempt integer, never_started timestamptz")}
     -- Not "j.started_at is null", a condition on the table alone (see FENCED): compared
     -- with the input's never_started, which the JSON does not carry (always null).
     where ${FENCED("j", "h")} and j.started_at is not distinct from h.never_started
     returning j.id`,
    [workerId, JSON.stringify(byId(held))],
  );
  return rows.map((r) => Number(r.id));
}

/**
 * Takes back up to `limit` running jobs whose lease expired (their worker died or lost
 * the database): back to pending, due now, when attempts remain (the lost attempt
 * counts); else `failed` (or `cancelled` if a cancel was requested). A periodic job that
 * ends here gets its next occurrence without a slot, for a worker to place. SKIP
 * LOCKED: any number of workers may rescue at once, and none waits on another.
 */
export async function jobRescueExpired(db: Queryable, limit: number) {
  return db.query<{ id: string; state: JobState; previous_owner: string | null; task: string }>(
    `with expired as (
       select id, locked_by from punctual.jobs
       where state = 'running' and locked_until < now()
       order by locked_until
       limit $1
       for update skip locked
     ),
     rescued as (
       update punctual.jobs as j
       set state = case
             when j.cancel_requested_at is not null then 'cancelled'::punctual.job_state
             when j.attempts >= j.max_attempts then 'failed'::punctual.job_state
             else 'pending'::punctual.job_state end,
           run_at = case when j.cancel_requested_at is null and j.attempts < j.max_attempts then now() else j.run_at end,
           finished_at = case when j.cancel_requested_at is null and j.attempts < j.max_attempts then null else now() end,
           last_error = 'lease expired: worker ' || coalesce(e.locked_by, '?') || ' stopped renewing it',
           last_error_stack = null, locked_by = null, locked_until = null, updated_at = now()
       from expired as e
       where j.id = e.id
       returning j.*, e.locked_by as previous_owner, null::timestamptz as next_slot, false as rule_unchanged
     ),
     next as (${INSERT_NEXT_OCCURRENCE("(select * from rescued where state = 'failed')")})
     select id, state, previous_owner, task from rescued`,
    [limit],
  );
}

/**
 * Deletes up to `limit` finished jobs (succeeded, failed, cancelled) that finished more
 * than `retentionMs` ago, oldest first. Only finished rows are touched, through their
 * own partial index, so claims never wait on pruning. Returns how many were deleted.
 */
export async function jobPruneFinished(db: Queryable, retentionMs: number, limit: number): Promise<number> {
  const rows = await db.query<{ deleted: number }>(
    `with doomed as (
       select id from punctual.jobs
       where state in ('succeeded', 'failed', 'cancelled') and finished_at < now() - $1 * interval '1 millisecond'
       order by finished_at
       limit $2
       for update skip locked
     ),
     deleted as (delete from punctual.jobs as j using doomed where j.id = doomed.id returning 1)
     select count(*)::int as deleted from deleted`,
    [retentionMs, limit],
  );
  return rows[0]!.deleted;
}

/**
 * When the next jobs this worker could claim become due (up to `count`, earliest
 * first), and the database's clock now: an idle worker sets timers for them, so a job
 * due at 12:00:00.000 starts on the millisecond rather than at the next poll, and jobs
 * due close together need no look-ahead between them. Probes one priority at a time,
 * like the claim, so it costs the same with a million future rows.
 */
export async function jobNextRunAt(db: Queryable, queues: readonly string[], tasks: readonly string[], count = 16) {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`look-ahead count must be a positive integer, not ${count}`);
  const rows = await db.query<{ run_ats: Date[] | null; now: Date }>(
    `select array(
       select first.run_at
       from generate_series(${PRIORITY_MIN}, ${PRIORITY_MAX}) as p(priority)
       cross join lateral (
         select run_at from punctual.jobs
         where state = 'pending' and priority = p.priority and queue = any($1::text[]) and task = any($2::text[])
         order by run_at
         limit ${count}
       ) as first
       order by first.run_at
       limit ${count}
     ) as run_ats, clock_timestamp() as now`,
    [queues, tasks],
    `next_run_at_${count}`,
  );
  const upcoming = rows[0]!.run_ats ?? [];
  return { nextRunAt: upcoming[0] ?? null, upcoming, dbNow: rows[0]!.now };
}
