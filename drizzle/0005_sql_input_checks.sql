-- Bad input from SQL gets the clarity TypeScript callers get: punctual.enqueue,
-- enqueue_many, schedule and schedule_many check every field before writing anything,
-- and refuse with SQLSTATE 22023 (invalid_parameter_value), a message
--   punctual.enqueue: priority must be an integer from -10 to 10, got 99
--   punctual.enqueue_many: jobs[3].priority must be an integer from -10 to 10, got 99
-- and the parameter's path (priority, jobs[3].priority; N counts from 0, as in
-- jobs -> N) in the error's COLUMN field, where drivers expose it (node-postgres:
-- error.column). Before, they failed on a NOT NULL or CHECK constraint, or on a cast
-- inside the function, naming a column or a constraint instead of the parameter.
--
-- Only PostgreSQL can refuse, before any function runs: an argument that does not
-- convert to its parameter's type (run_at => 'tomorrow-ish': 22007), and "\u0000" in
-- jsonb or text (22P05).
--
-- punctual.input_check: the rules for one JSON element. One row back: the element's key,
-- and what is wrong with it, as a code (null when it is fine): a field ('priority'), a
-- field and a rule ('tz:without_cron'), or ':object' and ':unknown' for the element
-- itself. check_input turns the code into the message: messages kept out of this
-- expression keep it small, and PostgreSQL compiles it at the start of every call,
-- which a single enqueue feels.
--   item:     one job or schedule, as enqueue_many / schedule_many take it;
--   schedule: true for a schedule (a key and a rule are required, run_at is not a field).
-- A single SELECT in SQL, so PostgreSQL inlines it into the caller's query: check_input
-- runs it over a whole batch as one set-based pass, with no call per element. The
-- fields are read once, as text, the way enqueue_many reads them (jsonb_to_record: a
-- number may be written "5", a boolean "true"); absent fields and JSON nulls take their
-- defaults. Timestamps and zone names are checked by casting them: a cast that fails
-- raises (SQLSTATE class 22), and check_input then looks for the element. Where a field
-- has a common value, the cheapest test of it comes first (a default queue; a priority
-- in a hashed list): this runs for every job enqueued.
CREATE FUNCTION punctual.input_check(item jsonb, schedule boolean)
RETURNS TABLE (item_key text, problem text)
LANGUAGE sql STABLE AS $fn$
  SELECT r.key, CASE
    WHEN jsonb_typeof(item) IS DISTINCT FROM 'object' THEN ':object'
    -- Unknown fields, as TypeScript refuses unknown options: a typo ("prority") would
    -- otherwise be dropped without a word. run_at is a job's field, not a schedule's.
    WHEN item - CASE WHEN schedule THEN '{key,task,payload,queue,priority,max_attempts,cron,tz,every_ms,fixed_delay,missed,slot_at,declared}'::text[]
                     ELSE '{task,payload,queue,key,priority,run_at,max_attempts,cron,tz,every_ms,fixed_delay,missed,slot_at,declared}'::text[] END
         <> '{}' THEN ':unknown'
    -- The task-name rule of defineTask (src/tasks.ts): no worker could run another name.
    -- Lengths are compared apart: a bounded repetition ({1,128}) is several times
    -- slower in PostgreSQL's regex engine.
    WHEN r.task IS NULL OR r.task !~ '^[A-Za-z0-9_.:-]+$' OR octet_length(r.task) > 128 THEN 'task'
    -- A number is read as its text, as jsonb_to_record does; an object or array is a mistake.
    WHEN (schedule AND r.key IS NULL) OR char_length(r.key) NOT BETWEEN 1 AND 255
         OR (left(r.key, 1) IN ('{', '[') AND jsonb_typeof(item -> 'key') IN ('object', 'array')) THEN 'key'
    -- Any JSON value is a payload, as in TypeScript; the worker checks it against the
    -- task's schema. JSON text is at most 6 times the binary size ("\u0001" for one
    -- byte), so only a payload in a large element is serialised to be measured (and
    -- none is copied out of its element).
    WHEN CASE WHEN pg_column_size(item) > 1048576 / 6 THEN octet_length((item -> 'payload')::text) > 1048576 END THEN 'payload'
    WHEN CASE WHEN r.queue = 'default' THEN false
              ELSE r.queue !~ '^[A-Za-z0-9_.:-]+$' OR octet_length(r.queue) > 64 END THEN 'queue'
    -- Integers; 3.0 is 3, as JSON does not tell them apart.
    WHEN NOT CASE WHEN r.priority IS NULL
                    OR r.priority IN ('-10', '-9', '-8', '-7', '-6', '-5', '-4', '-3', '-2', '-1', '0',
                                      '1', '2', '3', '4', '5', '6', '7', '8', '9', '10') THEN true
                  WHEN r.priority ~ '^-?[0-9]+(\.0+)?$' THEN r.priority::numeric BETWEEN -10 AND 10
                  ELSE false END THEN 'priority'
    WHEN NOT CASE WHEN r.max_attempts ~ '^[0-9]+(\.0+)?$' THEN r.max_attempts::numeric BETWEEN 1 AND 1000
                  ELSE r.max_attempts IS NULL END THEN 'max_attempts'
    WHEN NOT isfinite(r.run_at::timestamptz) THEN 'run_at'
    WHEN NOT isfinite(r.slot_at::timestamptz) THEN 'slot_at'
    -- Cron: its shape (what cron-parser reads: 5 fields, 6 with seconds first, or one
    -- of its macros). Its values (hour 25) only the worker can check; a rule it cannot
    -- evaluate ends the schedule with a clear error.
    WHEN NOT CASE WHEN r.cron IS NULL
                    OR r.cron ~ '^\s*[0-9A-Za-z*?/,#-]+(\s+[0-9A-Za-z*?/,#-]+){4,5}\s*$' THEN true
                  ELSE btrim(r.cron, E' \t\n\r\f') ~ '^@(yearly|annually|monthly|weekly|daily|hourly|minutely|secondly|weekdays|weekends)$' END
      THEN 'cron'
    -- A zone must be one the worker's IANA lookup (luxon, on ICU) reads: in PostgreSQL's
    -- tz database (AT TIME ZONE raises otherwise) and shaped like an IANA name, which
    -- keeps out what PostgreSQL reads but the worker does not: POSIX specs ('+05',
    -- 'UTC+3') and PostgreSQL's posix/ and right/ copies. A name without a slash may be
    -- an abbreviation (CEST) that AT TIME ZONE also reads, so it must be in the
    -- database's list of zones (read only when such a name comes), or one of ICU's
    -- legacy three-letter IDs (PST, IST, JST, ...), which TypeScript callers may send.
    WHEN NOT CASE WHEN r.tz IS NULL OR r.tz = 'UTC' THEN true
                  WHEN upper(r.tz) IN ('ACT', 'AET', 'AGT', 'ART', 'AST', 'BET', 'BST', 'CAT', 'CNT', 'CST', 'CTT', 'EAT', 'ECT',
                                       'IET', 'IST', 'JST', 'MIT', 'NET', 'NST', 'PLT', 'PNT', 'PRT', 'PST', 'SST', 'VST') THEN true
                  WHEN r.tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' THEN false
                  WHEN (now() AT TIME ZONE r.tz) IS NULL THEN false
                  WHEN strpos(r.tz, '/') > 0 THEN lower(split_part(r.tz, '/', 1)) NOT IN ('posix', 'right')
                  ELSE lower(r.tz) NOT IN ('factory', 'localtime', 'posixrules')
                       AND lower(r.tz) IN (SELECT lower(z.name) FROM pg_timezone_names z) END THEN 'tz'
    WHEN NOT CASE WHEN r.every_ms ~ '^[0-9]+(\.0+)?$' THEN r.every_ms::numeric BETWEEN 100 AND 31622400000
                  ELSE r.every_ms IS NULL END THEN 'every_ms'
    WHEN r.fixed_delay NOT IN ('true', 'false') THEN 'fixed_delay'
    WHEN r.missed NOT IN ('once', 'skip', 'all') THEN 'missed'
    WHEN r.declared NOT IN ('true', 'false') THEN 'declared'
    -- The rule as a whole.
    WHEN r.cron IS NOT NULL AND r.every_ms IS NOT NULL THEN 'every_ms:with_cron'
    WHEN schedule AND r.cron IS NULL AND r.every_ms IS NULL THEN 'cron:no_rule'
    WHEN r.tz IS NOT NULL AND r.cron IS NULL THEN 'tz:without_cron'
    WHEN r.fixed_delay = 'true' AND r.every_ms IS NULL THEN 'fixed_delay:without_every'
  END
  FROM jsonb_to_record(CASE WHEN jsonb_typeof(item) = 'object' THEN item ELSE '{}' END) AS r(
    task text, queue text, key text, priority text, run_at text, max_attempts text,
    cron text, tz text, every_ms text, fixed_delay text, missed text, slot_at text, declared text)
$fn$;
--> statement-breakpoint
-- punctual.check_input: refuses a call's bad input, or returns. One set-based pass over
-- the batch finds whether any element is bad and whether a key appears twice; only
-- when something is wrong does more work follow, to name the first bad element (the
-- error path may be slower, the hot path may not). A timestamp or zone cast that fails
-- in the pass raises: the pass runs in a block that catches it (SQLSTATE class 22), and
-- a bisection over halves of the batch then finds the first bad element. These blocks
-- read and write nothing, so they take no subtransaction id.
--   fn:          the function the caller called, for the message;
--   items:       a JSON array of jobs or schedules;
--   schedules:   schedules (schedule_many's fields) rather than jobs;
--   single:      the caller took named parameters (punctual.enqueue, punctual.schedule):
--                errors name the parameter (priority, every), not the element
--                (jobs[0].priority, schedules[0].every_ms);
--   on_conflict: jobs only, checked too.
CREATE FUNCTION punctual.check_input(fn text, items jsonb, schedules boolean, single boolean, on_conflict text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  list constant text := CASE WHEN schedules THEN 'schedules' ELSE 'jobs' END;
  every_field constant text := CASE WHEN single THEN 'every' ELSE 'every_ms' END;
  bad bigint;             -- index (from 0) of the first bad element
  pass_failed boolean := false;
  duplicates boolean;     -- some key appears twice
  duplicate_at bigint;    -- the first element whose key an earlier element has
  duplicate_first bigint; -- that earlier element
  duplicate_key text;
  lo bigint;
  hi bigint;
  mid bigint;
  half_bad boolean;
  item jsonb;
  fields constant text[] := CASE WHEN schedules
    THEN '{key,task,payload,queue,priority,max_attempts,cron,tz,every_ms,fixed_delay,missed,slot_at,declared}'::text[]
    ELSE '{task,payload,queue,key,priority,run_at,max_attempts,cron,tz,every_ms,fixed_delay,missed,slot_at,declared}'::text[] END;
  code text;
  field text;
  path text;
  got text;
BEGIN
  IF NOT schedules AND (on_conflict IS NULL OR on_conflict NOT IN ('replace', 'keep')) THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = 'on_conflict',
      MESSAGE = format('%s: on_conflict must be ''replace'' or ''keep'', got %s', fn, quote_nullable(on_conflict));
  END IF;
  IF jsonb_typeof(items) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = list,
      MESSAGE = format('%s: %s must be a JSON array, got %s', fn, list, coalesce(left(items::text, 100), 'NULL'));
  END IF;

  BEGIN
    -- (Keys compared bytewise: as the unique index does, and without the cost of a collation.)
    SELECT min(e.ord - 1) FILTER (WHERE c.problem IS NOT NULL), count(c.item_key) <> count(DISTINCT c.item_key COLLATE "C")
    INTO bad, duplicates
    FROM jsonb_array_elements(items) WITH ORDINALITY AS e(item, ord),
         LATERAL punctual.input_check(e.item, schedules) AS c;
  EXCEPTION WHEN data_exception THEN
    pass_failed := true;
    duplicates := true;
  END;
  IF bad IS NULL AND NOT pass_failed AND NOT duplicates THEN
    RETURN;
  END IF;

  IF duplicates THEN
    SELECT d.ord - 1, d.first - 1, d.key INTO duplicate_at, duplicate_first, duplicate_key
    FROM (SELECT e.ord, e.item ->> 'key' AS key, min(e.ord) OVER (PARTITION BY e.item ->> 'key' COLLATE "C") AS first
          FROM jsonb_array_elements(items) WITH ORDINALITY AS e(item, ord)
          WHERE jsonb_typeof(e.item) = 'object' AND e.item ->> 'key' IS NOT NULL) d
    WHERE d.ord > d.first
    ORDER BY d.ord
    LIMIT 1;
  END IF;
  IF pass_failed THEN
    -- Some element before the first repeated key (if the failure is there at all) is
    -- bad: keep the half that holds the first one.
    lo := 0;
    hi := coalesce(duplicate_at, jsonb_array_length(items)) - 1;
    WHILE lo < hi LOOP
      mid := (lo + hi) / 2;
      BEGIN
        SELECT bool_or(c.problem IS NOT NULL) INTO half_bad
        FROM jsonb_array_elements(jsonb_path_query_array(items, format('$[%s to %s]', lo, mid)::jsonpath)) AS e(item),
             LATERAL punctual.input_check(e.item, schedules) AS c;
      EXCEPTION WHEN data_exception THEN
        half_bad := true;
      END;
      IF half_bad THEN
        hi := mid;
      ELSE
        lo := mid + 1;
      END IF;
    END LOOP;
    bad := lo;
  END IF;

  IF bad IS NOT NULL AND (duplicate_at IS NULL OR bad < duplicate_at) THEN
    item := items -> bad::int;
    BEGIN
      SELECT c.problem INTO code FROM punctual.input_check(item, schedules) AS c;
    EXCEPTION WHEN data_exception THEN
      -- The element has the cast that fails: which one?
      FOREACH code IN ARRAY ARRAY['run_at', 'slot_at', 'tz'] LOOP
        BEGIN
          IF code = 'tz' THEN
            PERFORM now() AT TIME ZONE (item ->> 'tz');
          ELSE
            PERFORM (item ->> code)::timestamptz;
          END IF;
        EXCEPTION WHEN data_exception THEN
          EXIT;
        END;
      END LOOP;
    END;
  END IF;

  IF code IS NOT NULL THEN
    field := split_part(code, ':', 1);
    got := coalesce(left((item -> field)::text, 100), 'null');
    path := CASE WHEN single THEN replace(field, 'every_ms', every_field)
                 ELSE format('%s[%s]', list, bad) || CASE WHEN field = '' THEN '' ELSE '.' || field END END;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = path,
      MESSAGE = format('%s: %s %s', fn, path, CASE code
        WHEN ':object' THEN 'must be a JSON object, got ' || coalesce(left(item::text, 100), 'null')
        WHEN ':unknown' THEN format('has unknown fields %s; a %s''s fields are %s',
          left((item - fields)::text, 100), CASE WHEN schedules THEN 'schedule' ELSE 'job' END, array_to_string(fields, ', '))
        WHEN 'task' THEN 'must be 1-128 letters, digits or _ . : -, got ' || got
        WHEN 'key' THEN 'must be a string of 1-255 characters, got '
          || CASE WHEN jsonb_typeof(item -> 'key') = 'string' AND item ->> 'key' <> ''
                  THEN char_length(item ->> 'key') || ' characters' ELSE got END
        WHEN 'payload' THEN format('is larger than 1 MiB of JSON: %s bytes, the limit is 1048576', octet_length((item -> 'payload')::text))
        WHEN 'queue' THEN 'must be 1-64 letters, digits or _ . : -, got ' || got
        WHEN 'priority' THEN 'must be an integer from -10 to 10, got ' || got
        WHEN 'max_attempts' THEN 'must be an integer from 1 to 1000, got ' || got
        WHEN 'run_at' THEN 'must be a finite timestamp such as "2030-01-01T08:00:00Z", got ' || got
        WHEN 'slot_at' THEN 'must be a finite timestamp such as "2030-01-01T08:00:00Z", got ' || got
        WHEN 'cron' THEN 'must be a cron expression of 5 fields (6 with seconds first) or a macro such as @daily, got ' || got
        WHEN 'tz' THEN 'must be an IANA time zone such as "Europe/Paris", got ' || got
        WHEN 'every_ms' THEN 'must be an interval from 100 ms to 366 days, got ' || got
          || CASE WHEN jsonb_typeof(item -> 'every_ms') = 'number' THEN ' ms' ELSE '' END
        WHEN 'fixed_delay' THEN 'must be true or false, got ' || got
        WHEN 'missed' THEN 'must be ''once'', ''skip'' or ''all'', got ' || got
        WHEN 'declared' THEN 'must be true or false, got ' || got
        WHEN 'every_ms:with_cron' THEN 'must be null when cron is given: a rule is a cron expression or an interval, not both'
        WHEN 'cron:no_rule' THEN format('or %s is required: a schedule needs a cron expression or an interval', every_field)
        WHEN 'tz:without_cron' THEN 'applies to cron rules only, got ' || got
        WHEN 'fixed_delay:without_every' THEN format('applies to interval rules (%s) only', every_field)
      END);
  ELSIF duplicate_at IS NOT NULL THEN
    path := format('%s[%s].key', list, duplicate_at);
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', COLUMN = path,
      MESSAGE = format('%s: %s %s appears twice in one batch (also %s[%s])', fn, path, to_jsonb(duplicate_key), list, duplicate_first);
  END IF;
END
$fn$;
--> statement-breakpoint
-- enqueue_many as in 0004, with its input checked first. jobs: a JSON array of objects
-- with the fields task (required), payload, queue, key, priority, run_at, max_attempts,
-- and the periodic fields cron, tz, every_ms, fixed_delay, missed, slot_at, declared;
-- absent or null fields take the column defaults. on_conflict: 'replace' or 'keep' (see
-- 0001). The numbers are read as numeric: 3.0 is a valid priority, checked integral.
CREATE OR REPLACE FUNCTION punctual.enqueue_many(jobs jsonb, on_conflict text DEFAULT 'replace')
RETURNS TABLE (ord bigint, id bigint, key text, state punctual.job_state, run_at timestamptz, outcome text)
LANGUAGE plpgsql VOLATILE AS $fn$
-- The output columns (id, key, ...) share names with table columns; in queries, a bare
-- name means the column.
#variable_conflict use_column
BEGIN
  PERFORM punctual.check_input('punctual.enqueue_many', jobs, false, false, on_conflict);

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
-- punctual.enqueue as in 0001, in PL/pgSQL to check its parameters under their own
-- names (priority, not jobs[0].priority) before enqueue_many runs (whose own check of
-- the one job then passes).
CREATE OR REPLACE FUNCTION punctual.enqueue(
  task text,
  payload jsonb DEFAULT '{}',
  run_at timestamptz DEFAULT now(),
  key text DEFAULT NULL,
  queue text DEFAULT 'default',
  priority integer DEFAULT 0,
  max_attempts integer DEFAULT 5,
  on_conflict text DEFAULT 'replace'
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  jobs constant jsonb := jsonb_build_array(jsonb_build_object(
    'task', task, 'payload', payload, 'run_at', run_at, 'key', key, 'queue', queue,
    'priority', priority, 'max_attempts', max_attempts));
  job_id bigint;
BEGIN
  PERFORM punctual.check_input('punctual.enqueue', jobs, false, true, on_conflict);
  SELECT e.id INTO job_id FROM punctual.enqueue_many(jobs, on_conflict) AS e;
  RETURN job_id;
END
$fn$;
--> statement-breakpoint
-- schedule_many as in 0002, with its input checked first (which replaces 0002's checks
-- of key, rule, interval, zone and payload size). The fields are those of 0002.
CREATE OR REPLACE FUNCTION punctual.schedule_many(schedules jsonb)
RETURNS TABLE (ord bigint, id bigint, key text, state punctual.job_state, run_at timestamptz,
               slot_at timestamptz, outcome text)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
  PERFORM punctual.check_input('punctual.schedule_many', schedules, true, false);

  RETURN QUERY
  WITH input AS (
    SELECT i.ord, s.key, s.task, coalesce(s.payload, '{}') AS payload, coalesce(s.queue, 'default') AS queue,
           coalesce(s.priority, 0) AS priority, coalesce(s.max_attempts, 5) AS max_attempts,
           s.cron, CASE WHEN s.cron IS NOT NULL THEN coalesce(s.tz, 'UTC') END AS tz, s.every_ms,
           coalesce(s.fixed_delay, false) AS fixed_delay, coalesce(s.missed, 'once') AS missed,
           coalesce(s.declared, false) AS declared, s.slot_at
    FROM jsonb_array_elements(schedules) WITH ORDINALITY AS i(item, ord),
         LATERAL jsonb_to_record(i.item) AS s(
           key text, task text, payload jsonb, queue text, priority numeric, max_attempts numeric,
           cron text, tz text, every_ms numeric, fixed_delay boolean, missed text, declared boolean,
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
-- punctual.schedule as in 0002, in PL/pgSQL to check its parameters under their own
-- names (every, not schedules[0].every_ms) before schedule_many runs.
CREATE OR REPLACE FUNCTION punctual.schedule(
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
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  schedules constant jsonb := jsonb_build_array(jsonb_build_object(
    'key', key, 'task', task, 'payload', payload, 'cron', cron, 'tz', tz,
    'every_ms', (extract(epoch FROM every) * 1000)::bigint, 'missed', missed, 'fixed_delay', fixed_delay,
    'queue', queue, 'priority', priority, 'max_attempts', max_attempts));
  job_id bigint;
BEGIN
  PERFORM punctual.check_input('punctual.schedule', schedules, true, true);
  SELECT s.id INTO job_id FROM punctual.schedule_many(schedules) AS s;
  RETURN job_id;
END
$fn$;
