-- Faster writes (measured with `npm run bench`, see BENCHMARKS.md).
--
-- 1. enqueue_many matched written rows back to their input with one join on
--    "id = new_id OR key = key", which PostgreSQL can only run as a nested loop:
--    quadratic in the batch size (20,000 jobs in one call took 23 s). Same function,
--    two hashable joins.
CREATE OR REPLACE FUNCTION punctual.enqueue_many(jobs jsonb, on_conflict text DEFAULT 'replace')
RETURNS TABLE (ord bigint, id bigint, key text, state punctual.job_state, run_at timestamptz, outcome text)
LANGUAGE plpgsql VOLATILE AS $fn$
-- The output columns (id, key, ...) share names with table columns; in queries, a bare
-- name means the column.
#variable_conflict use_column
BEGIN
  IF on_conflict IS NULL OR on_conflict NOT IN ('replace', 'keep') THEN
    RAISE EXCEPTION 'punctual.enqueue: on_conflict must be ''replace'' or ''keep'', not %', coalesce(on_conflict, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(jobs) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'punctual.enqueue: jobs must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM jsonb_array_elements(jobs) AS e(job)
             WHERE octet_length((e.job -> 'payload')::text) > 1048576) THEN
    RAISE EXCEPTION 'punctual.enqueue: payload is larger than 1 MiB of JSON' USING ERRCODE = 'program_limit_exceeded';
  END IF;

  RETURN QUERY
  WITH input AS (
    SELECT i.ord,
           -- Ids are drawn up front so that unkeyed rows can be matched back to their input.
           nextval('punctual.jobs_id_seq'::regclass) AS new_id,
           j.*
    FROM jsonb_array_elements(jobs) WITH ORDINALITY AS i(job, ord),
         LATERAL jsonb_to_record(i.job) AS j(
           task text, payload jsonb, queue text, key text, priority smallint, run_at timestamptz,
           max_attempts integer, cron text, tz text, every_ms bigint, fixed_delay boolean,
           missed text, slot_at timestamptz, declared boolean)
  ),
  written AS (
    INSERT INTO punctual.jobs AS t (id, task, payload, queue, key, priority, run_at, max_attempts,
                                    cron, tz, every_ms, fixed_delay, missed, slot_at, declared)
    OVERRIDING SYSTEM VALUE
    SELECT new_id, i.task, coalesce(i.payload, '{}'), coalesce(i.queue, 'default'), i.key,
           coalesce(i.priority, 0), coalesce(i.run_at, now()), coalesce(i.max_attempts, 5),
           i.cron, i.tz, i.every_ms, coalesce(i.fixed_delay, false), coalesce(i.missed, 'once'),
           i.slot_at, coalesce(i.declared, false)
    FROM input i
    ORDER BY i.ord
    -- The partial unique index decides, not a SELECT: two racing enqueues of one key
    -- cannot both insert.
    ON CONFLICT (key) WHERE state IN ('pending', 'running') DO UPDATE
      SET task = excluded.task, payload = excluded.payload, queue = excluded.queue,
          priority = excluded.priority, run_at = excluded.run_at, max_attempts = excluded.max_attempts,
          cron = excluded.cron, tz = excluded.tz, every_ms = excluded.every_ms,
          fixed_delay = excluded.fixed_delay, missed = excluded.missed, slot_at = excluded.slot_at,
          declared = excluded.declared, attempts = 0, last_error = NULL, last_error_stack = NULL,
          cancel_requested_at = NULL, updated_at = now()
      WHERE enqueue_many.on_conflict = 'replace' AND t.state = 'pending'
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
-- 2. The UPDATE trigger kept a transition table of every updated row, so each claim
--    and each completion paid for copying its rows (a quarter of a claim's time). Only
--    updates that leave a row pending need to wake workers (a retry, a debounce
--    replace, a rescue, a placed schedule): a row trigger with a WHEN clause costs
--    nothing for the others, as PostgreSQL evaluates WHEN without calling the function.
DROP TRIGGER jobs_notify_update ON punctual.jobs;
--> statement-breakpoint
CREATE FUNCTION punctual.notify_pending_row() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('punctual_jobs', json_build_object('run_at', NEW.run_at)::text);
  RETURN NULL;
END
$fn$;
--> statement-breakpoint
CREATE TRIGGER jobs_notify_update AFTER UPDATE OF state, run_at ON punctual.jobs
  FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION punctual.notify_pending_row();
