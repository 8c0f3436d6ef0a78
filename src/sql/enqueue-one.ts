/**
 * The single-row enqueue: `client.enqueue`'s statement for one job. It is
 * `punctual.enqueue_many` (drizzle/0001, 0004, 0005) cut to one row: one INSERT ... ON
 * CONFLICT on the live-key index, with plain parameters, sent as a named statement, so
 * PostgreSQL parses and plans it once per connection. What it leaves out is the
 * batch's machinery (a JSON array built by the client, parsed into rows by plpgsql, ids
 * drawn up front to match rows back to their input) and the SQL-side input checks of
 * 0005, which guard the SQL functions for SQL callers; the client has validated every
 * field before it gets here.
 *
 * Same semantics as `enqueue_many` for one job, column for column (test/integration/
 * enqueue-one.test.ts holds the two side by side): absent fields take the same
 * defaults, a conflicting pending job takes the same SET list (so the same triggers
 * fire: the INSERT's wake-up NOTIFY for a new row, the UPDATE OF run_at row trigger for
 * a replaced one), and a running job, or any live job under "keep", is left alone.
 */
import type { Queryable } from "../executor.js";
import type { TraceCarrier } from "../otel.js";
import type { EnqueueRow, JobInsert } from "./jobs.js";

/**
 * Payloads longer than this (in UTF-16 code units of JSON text) go through
 * `enqueue_many` instead. Its SQL check refuses a payload whose jsonb text exceeds
 * 1 MiB, and jsonb text can be longer than the client's JSON: a number such as
 * 5e-324 (6 characters) prints as 326 digits. No payload of 16,384 characters reaches
 * 1 MiB that way (at most 55 bytes per character), so below this bound the check can
 * never refuse and the two paths agree; above it, the check runs as it always has.
 */
export const ONE_ROW_PAYLOAD_MAX_CHARS = 16_384;

/**
 * Parameters: $1 task, $2 payload (JSON text), $3 queue, $4 key, $5 priority, $6 run_at
 * (null: now(), by the database's clock), $7 max_attempts, $8 on_conflict, $9
 * trace_context (JSON text, null without OpenTelemetry). Null fields take
 * enqueue_many's defaults. A JSON null payload is stored as '{}', as enqueue_many
 * stores it (jsonb_to_record reads it as SQL NULL, which its coalesce replaces).
 *
 * The result is at most one row: the written row, or else the live row with the key
 * (kept). The lookup of the kept row is gated by a one-time filter, so an insert never
 * probes the key index. A live row committed after this statement's snapshot is locked
 * by ON CONFLICT but not visible to the lookup: no row comes back, and the caller reads
 * it again, as it does for enqueue_many's null id.
 */
const ENQUEUE_ONE = `with written as (
  insert into punctual.jobs as t (task, payload, queue, key, priority, run_at, max_attempts, trace_context)
  values ($1::text, coalesce(nullif($2::jsonb, 'null'), '{}'), coalesce($3::text, 'default'), $4::text,
          coalesce($5::smallint, 0), coalesce($6::timestamptz, now()), coalesce($7::integer, 5), $9::jsonb)
  -- The partial unique index decides, not a SELECT: two racing enqueues of one key
  -- cannot both insert. The SET list is enqueue_many's, column for column.
  on conflict (key) where key is not null and state in ('pending', 'running') do update
    set task = excluded.task, payload = excluded.payload, queue = excluded.queue,
        priority = excluded.priority, run_at = excluded.run_at, max_attempts = excluded.max_attempts,
        cron = excluded.cron, tz = excluded.tz, every_ms = excluded.every_ms,
        fixed_delay = excluded.fixed_delay, missed = excluded.missed, slot_at = excluded.slot_at,
        declared = excluded.declared, trace_context = excluded.trace_context, attempts = 0,
        last_error = null, last_error_stack = null, cancel_requested_at = null, updated_at = now()
    where $8::text = 'replace' and t.state = 'pending'
  returning t.id, t.key, t.state, t.run_at, t.xmax = 0 as inserted
)
select w.id, w.key, w.state, w.run_at, case when w.inserted then 'inserted' else 'replaced' end as outcome
from written as w
union all
select live.id, live.key, live.state, live.run_at, 'kept'
from punctual.jobs as live
where live.key = $4::text and live.state in ('pending', 'running') and not exists (select from written)`;

/**
 * Enqueues one job in one statement (one commit outside a transaction), with the key
 * semantics of `jobEnqueueMany`. `payloadJson` is the payload's JSON text, validated by
 * the caller; `traceContext` the caller's OpenTelemetry context, if any. Returns what
 * `jobEnqueueMany` returns for a one-job batch: id null means kept, by a live job that
 * this statement could not see (read it with `jobGetLiveByKey`).
 */
export async function jobEnqueueOne(
  db: Queryable,
  job: JobInsert,
  payloadJson: string,
  onConflict: "replace" | "keep",
  traceContext: TraceCarrier | null = null,
): Promise<EnqueueRow> {
  const rows = await db.query<EnqueueRow & Record<string, unknown>>(
    ENQUEUE_ONE,
    [
      job.task,
      payloadJson,
      job.queue,
      job.key,
      job.priority,
      // The text enqueue_many reads (JSON.stringify writes a Date with toISOString), so
      // PostgreSQL parses the same instant from the same characters.
      job.run_at ? job.run_at.toISOString() : null,
      job.max_attempts,
      onConflict,
      traceContext && JSON.stringify(traceContext),
    ],
    "enqueue_one",
  );
  return rows[0] ?? { id: null, key: job.key ?? null, state: null, run_at: null, outcome: "kept" };
}
