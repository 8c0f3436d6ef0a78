-- enqueue_many takes the enqueuer's trace context (the column is 0009's), so a job
-- enqueued inside an OpenTelemetry span carries it to the worker, whose run span links
-- to it (src/otel.ts). One context for the whole batch: a batch comes from one call,
-- made in one context. It is a third parameter rather than a field of each job, so
-- input_check and check_input (0005), and the single enqueue's checks, are unchanged.
--   trace_context: null (the default: no trace, as every existing caller passes), or
--   a W3C trace context as JSON: {"traceparent": "00-<trace id>-<span id>-<flags>",
--   "tracestate": "..."} (tracestate optional), what the headers of the same names
--   carry. Refused otherwise, with SQLSTATE 22023 naming trace_context, as 0005 refuses
--   bad input; a null costs nothing more than before.
-- On conflict, a replaced pending job takes the new context with the rest of its
-- values (null if the replacing call had none): the row now stands for that call.
--
-- A new parameter changes the signature, which CREATE OR REPLACE cannot do (it would
-- add a second enqueue_many beside the first, and a call with two arguments would then
-- match both): the old function is dropped and the new one created, in the migration's
-- transaction. Its default keeps every existing call working, punctual.enqueue's
-- included. A grant of EXECUTE on the old function to a specific role does not carry
-- over (functions are executable by PUBLIC unless revoked).
DROP FUNCTION punctual.enqueue_many(jsonb, text);--> statement-breakpoint
-- enqueue_many in two: its checks (0005's, and trace_context's), then its writing
-- (0005's, plus trace_context: written on new rows and in the SET list of a replaced
-- one), in enqueue_many_unchecked. The
-- TypeScript client calls the second directly: it has checked every job against the
-- same rules before sending it (test/integration/bad-input.test.ts holds both to the
-- same answers), as its single-job path does (src/sql/enqueue-one.ts), and the check
-- cost a third of a 1,000-job batch's time in the database. SQL callers go through
-- enqueue_many, checked as before, with the same results.
CREATE FUNCTION punctual.enqueue_many_unchecked(jobs jsonb, on_conflict text, trace_context jsonb)
RETURNS TABLE (ord bigint, id bigint, key text, state punctual.job_state, run_at timestamptz, outcome text)
LANGUAGE plpgsql VOLATILE AS $fn$
-- The output columns (id, key, ...) share names with table columns; in queries, a bare
-- name means the column (so a parameter is enqueue_many_unchecked.<name>).
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT i.ord,
           -- Ids are drawn up front so that unkeyed rows can be matched back to their input.
           nextval('punctual.jobs_id_seq'::regclass) AS new_id,
           j.*
    FROM jsonb_array_elements(jobs) WITH ORDINALITY AS i(job, ord),
         LATERAL jsonb_to_record(i.job) AS j(
           task text, payload jsonb, queue text, key text, priority numeric, run_at timestamptz,
           max_attempts numeric, cron text, tz text, every_ms numeric, fixed_delay boolean,
           missed text, slot_at timestamptz, declared boolean)
  ),
  written AS (
    INSERT INTO punctual.jobs AS t (id, task, payload, queue, key, priority, run_at, max_attempts,
                                    cron, tz, every_ms, fixed_delay, missed, slot_at, declared, trace_context)
    OVERRIDING SYSTEM VALUE
    SELECT new_id, i.task, coalesce(i.payload, '{}'), coalesce(i.queue, 'default'), i.key,
           coalesce(i.priority, 0), coalesce(i.run_at, now()), coalesce(i.max_attempts, 5),
           i.cron, i.tz, i.every_ms, coalesce(i.fixed_delay, false), coalesce(i.missed, 'once'),
           i.slot_at, coalesce(i.declared, false), enqueue_many_unchecked.trace_context
    FROM input i
    ORDER BY i.ord
    -- The partial unique index decides, not a SELECT: two racing enqueues of one key
    -- cannot both insert.
    ON CONFLICT (key) WHERE state IN ('pending', 'running') DO UPDATE
      SET task = excluded.task, payload = excluded.payload, queue = excluded.queue,
          priority = excluded.priority, run_at = excluded.run_at, max_attempts = excluded.max_attempts,
          cron = excluded.cron, tz = excluded.tz, every_ms = excluded.every_ms,
          fixed_delay = excluded.fixed_delay, missed = excluded.missed, slot_at = excluded.slot_at,
          declared = excluded.declared, trace_context = excluded.trace_context, attempts = 0,
          last_error = NULL, last_error_stack = NULL, cancel_requested_at = NULL, updated_at = now()
      WHERE enqueue_many_unchecked.on_conflict = 'replace' AND t.state = 'pending'
    RETURNING t.id, t.key, t.state, t.run_at, (t.xmax = 0) AS inserted
  )
  SELECT i.ord, coalesce(w.id, live.id), i.key, coalesce(w.state, live.state), coalesce(w.run_at, live.run_at),
         CASE WHEN w.inserted THEN 'inserted' WHEN w.id IS NOT NULL THEN 'replaced' ELSE 'kept' END
  FROM input i
  -- Two equality joins (hashable), not one join on "id or key": that was quadratic.
  LEFT JOIN written ins ON ins.id = i.new_id
  LEFT JOIN written upd ON ins.id IS NULL AND i.key IS NOT NULL AND upd.key = i.key
  CROSS JOIN LATERAL (SELECT coalesce(ins.id, upd.id) AS id, coalesce(ins.state, upd.state) AS state,
                             coalesce(ins.run_at, upd.run_at) AS run_at, coalesce(ins.inserted, upd.inserted) AS inserted) w
  -- A kept job: the live row with the key. (If it was committed by another transaction
  -- after this statement began, it is not visible here and id is null; the client looks
  -- it up again.)
  LEFT JOIN punctual.jobs live ON w.id IS NULL AND live.key = i.key AND live.state IN ('pending', 'running')
  ORDER BY i.ord;
END
$fn$;
--> statement-breakpoint
-- enqueue_many: its checks, then the writing above.
CREATE FUNCTION punctual.enqueue_many(jobs jsonb, on_conflict text DEFAULT 'replace', trace_context jsonb DEFAULT NULL)
RETURNS TABLE (ord bigint, id bigint, key text, state punctual.job_state, run_at timestamptz, outcome text)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
  PERFORM punctual.check_input('punctual.enqueue_many', jobs, false, false, on_conflict);
  -- Only a non-null context is looked at. The traceparent is a version other than ff
  -- with a trace id and span id that are not all zeros (W3C Trace Context, level 1);
  -- tracestate is bounded as src/otel.ts bounds what it writes.
  -- (A CASE, for its order: removing keys from a JSON scalar raises. In parentheses,
  -- or PL/pgSQL would take its first THEN for the IF's.)
  IF enqueue_many.trace_context IS NOT NULL AND NOT (CASE
       WHEN jsonb_typeof(enqueue_many.trace_context) <> 'object' THEN false
       ELSE coalesce(
         enqueue_many.trace_context - '{traceparent,tracestate}'::text[] = '{}'
         AND jsonb_typeof(enqueue_many.trace_context -> 'traceparent') = 'string'
         AND enqueue_many.trace_context ->> 'traceparent' ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
         AND enqueue_many.trace_context ->> 'traceparent' !~ '^ff-|^..-0{32}-|-0{16}-..$'
         AND coalesce(jsonb_typeof(enqueue_many.trace_context -> 'tracestate'), 'null') IN ('string', 'null')
         AND coalesce(char_length(enqueue_many.trace_context ->> 'tracestate'), 0) <= 8192,
         false) END) THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'trace_context',
      MESSAGE = format('punctual.enqueue_many: trace_context must be null or a W3C trace context '
        '{"traceparent": "00-<32 hex>-<16 hex>-<2 hex>", "tracestate": "..." (optional, at most 8192 characters)}, got %s',
        left(enqueue_many.trace_context::text, 100));
  END IF;

  RETURN QUERY SELECT * FROM punctual.enqueue_many_unchecked(jobs, on_conflict, enqueue_many.trace_context);
END
$fn$;
