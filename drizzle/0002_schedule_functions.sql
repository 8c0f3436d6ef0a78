-- Periodic schedules from SQL and TypeScript alike. A schedule is one live row that
-- carries its rule (cron + tz, or every_ms); finishing an occurrence inserts the next.
--
-- punctual.schedule_many(schedules jsonb): one row per JSON object with the fields key
-- (required), task (required), payload, queue, priority, max_attempts, cron, tz,
-- every_ms, fixed_delay, missed, declared, slot_at. slot_at is the first slot; when it
-- is null (SQL callers cannot evaluate cron), the row is due now and the worker that
-- claims it places it on its first slot instead of running it.
--
-- For a key that already has a live job:
--   pending, rule unchanged: the new payload and options apply; the pending slot stays;
--   pending, rule changed:   everything applies and the occurrence moves to slot_at;
--   running:                 the new payload, options and rule apply to the row, so the
--                            occurrence after the running one uses them;
--   nothing differs:         nothing is written (outcome 'unchanged').
-- Returns one row per input element, in input order; outcome is 'inserted', 'updated'
-- or 'unchanged'.
CREATE FUNCTION punctual.schedule_many(schedules jsonb)
RETURNS TABLE (ord bigint, id bigint, key text, state punctual.job_state, run_at timestamptz,
               slot_at timestamptz, outcome text)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
  IF jsonb_typeof(schedules) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'punctual.schedule: schedules must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM jsonb_array_elements(schedules) AS e(s)
             WHERE coalesce(e.s ->> 'key', '') = ''
                OR (e.s ->> 'cron' IS NULL) = (e.s ->> 'every_ms' IS NULL)) THEN
    RAISE EXCEPTION 'punctual.schedule: every schedule needs a key and exactly one of cron or every'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT FROM jsonb_array_elements(schedules) AS e(s)
             WHERE (e.s ->> 'every_ms')::numeric NOT BETWEEN 100 AND 31622400000) THEN
    RAISE EXCEPTION 'punctual.schedule: every must be between 100 ms and 366 days'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- An unknown zone raises 'time zone "..." not recognized' here, before anything is
  -- written (pg_timezone_names would say the same, but reads every zone file per call).
  PERFORM now() AT TIME ZONE (e.s ->> 'tz')
  FROM jsonb_array_elements(schedules) AS e(s)
  WHERE e.s ->> 'tz' IS NOT NULL;
  IF EXISTS (SELECT FROM jsonb_array_elements(schedules) AS e(s)
             WHERE octet_length((e.s -> 'payload')::text) > 1048576) THEN
    RAISE EXCEPTION 'punctual.schedule: payload is larger than 1 MiB of JSON' USING ERRCODE = 'program_limit_exceeded';
  END IF;

  RETURN QUERY
  WITH input AS (
    SELECT i.ord, s.key, s.task, coalesce(s.payload, '{}') AS payload, coalesce(s.queue, 'default') AS queue,
           coalesce(s.priority, 0) AS priority, coalesce(s.max_attempts, 5) AS max_attempts,
           s.cron, CASE WHEN s.cron IS NOT NULL THEN coalesce(s.tz, 'UTC') END AS tz, s.every_ms,
           coalesce(s.fixed_delay, false) AS fixed_delay, coalesce(s.missed, 'once') AS missed,
           coalesce(s.declared, false) AS declared, s.slot_at
    FROM jsonb_array_elements(schedules) WITH ORDINALITY AS i(item, ord),
         LATERAL jsonb_to_record(i.item) AS s(
           key text, task text, payload jsonb, queue text, priority smallint, max_attempts integer,
           cron text, tz text, every_ms bigint, fixed_delay boolean, missed text, declared boolean,
           slot_at timestamptz)
  ),
  written AS (
    INSERT INTO punctual.jobs AS t (key, task, payload, queue, priority, max_attempts, cron, tz, every_ms,
                                    fixed_delay, missed, declared, slot_at, run_at)
    SELECT i.key, i.task, i.payload, i.queue, i.priority, i.max_attempts, i.cron, i.tz, i.every_ms,
           i.fixed_delay, i.missed, i.declared, i.slot_at, coalesce(i.slot_at, now())
    FROM input i
    ORDER BY i.ord
    ON CONFLICT (key) WHERE state IN ('pending', 'running') DO UPDATE
      SET task = excluded.task, payload = excluded.payload, queue = excluded.queue,
          priority = excluded.priority, max_attempts = excluded.max_attempts,
          cron = excluded.cron, tz = excluded.tz, every_ms = excluded.every_ms,
          fixed_delay = excluded.fixed_delay, missed = excluded.missed, declared = excluded.declared,
          -- A pending occurrence moves only when the rule changed; a running one keeps
          -- its slot (the next occurrence is computed from the new rule).
          slot_at = CASE WHEN t.state = 'pending' AND (t.cron, t.tz, t.every_ms, t.fixed_delay)
                              IS DISTINCT FROM (excluded.cron, excluded.tz, excluded.every_ms, excluded.fixed_delay)
                         THEN excluded.slot_at ELSE t.slot_at END,
          run_at = CASE WHEN t.state = 'pending' AND (t.cron, t.tz, t.every_ms, t.fixed_delay)
                             IS DISTINCT FROM (excluded.cron, excluded.tz, excluded.every_ms, excluded.fixed_delay)
                        THEN excluded.run_at ELSE t.run_at END,
          cancel_requested_at = NULL, updated_at = now()
      WHERE (t.task, t.payload, t.queue, t.priority, t.max_attempts, t.cron, t.tz, t.every_ms,
             t.fixed_delay, t.missed, t.declared)
            IS DISTINCT FROM
            (excluded.task, excluded.payload, excluded.queue, excluded.priority, excluded.max_attempts,
             excluded.cron, excluded.tz, excluded.every_ms, excluded.fixed_delay, excluded.missed,
             excluded.declared)
         OR t.cancel_requested_at IS NOT NULL
    RETURNING t.id, t.key, t.state, t.run_at, t.slot_at, (t.xmax = 0) AS inserted
  )
  SELECT i.ord, coalesce(w.id, live.id), i.key, coalesce(w.state, live.state), coalesce(w.run_at, live.run_at),
         coalesce(w.slot_at, live.slot_at),
         CASE WHEN w.inserted THEN 'inserted' WHEN w.id IS NOT NULL THEN 'updated' ELSE 'unchanged' END
  FROM input i
  LEFT JOIN written w ON w.key = i.key
  LEFT JOIN punctual.jobs live ON w.id IS NULL AND live.key = i.key AND live.state IN ('pending', 'running')
  ORDER BY i.ord;
END
$fn$;
--> statement-breakpoint
-- One schedule, with named arguments. The first slot is computed by the worker that
-- claims the row (SQL cannot evaluate cron), so the row is due at once:
--   select punctual.schedule('todo-email:42', 'send-todo-email', '{"userId": 42}',
--                            cron => '0 8 * * *', tz => 'Europe/Paris');
--   select punctual.schedule('expired-plans', 'check-expired-plans', every => interval '1 hour');
-- Returns the id of the live row for the key.
CREATE FUNCTION punctual.schedule(
  key text,
  task text,
  payload jsonb DEFAULT '{}',
  cron text DEFAULT NULL,
  tz text DEFAULT NULL,
  every interval DEFAULT NULL,
  missed text DEFAULT 'once',
  fixed_delay boolean DEFAULT false,
  queue text DEFAULT 'default',
  priority integer DEFAULT 0,
  max_attempts integer DEFAULT 5
) RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
  SELECT s.id
  FROM punctual.schedule_many(jsonb_build_array(jsonb_build_object(
    'key', key, 'task', task, 'payload', payload, 'cron', cron, 'tz', tz,
    'every_ms', (extract(epoch FROM every) * 1000)::bigint, 'missed', missed, 'fixed_delay', fixed_delay,
    'queue', queue, 'priority', priority, 'max_attempts', max_attempts))) AS s;
$fn$;
