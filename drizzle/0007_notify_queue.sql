-- Wake-ups name their queue, so an idle worker wakes only for jobs of the queues it
-- serves (a worker of queue "emails" used to claim, and find nothing, for every insert
-- into any queue). An INSERT statement sends one notification per queue it made jobs
-- pending in (not per row), with that queue's earliest run_at; a row update that leaves
-- a job pending sends one for that row. Workers of an older version ignore the new
-- field and wake as before.
CREATE OR REPLACE FUNCTION punctual.notify_pending() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  due record;
BEGIN
  FOR due IN SELECT queue, min(run_at) AS run_at FROM new_rows WHERE state = 'pending' GROUP BY queue LOOP
    PERFORM pg_notify('punctual_jobs', json_build_object('run_at', due.run_at, 'queue', due.queue)::text);
  END LOOP;
  RETURN NULL;
END
$fn$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION punctual.notify_pending_row() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('punctual_jobs', json_build_object('run_at', NEW.run_at, 'queue', NEW.queue)::text);
  RETURN NULL;
END
$fn$;
