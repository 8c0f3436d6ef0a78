-- Wakes idle workers: one NOTIFY per statement (not per row, so a bulk insert of
-- 20,000 jobs sends one), carrying the earliest run_at among the rows the statement
-- made pending. Workers claim at once when it is due, or set a timer for it. NOTIFY is
-- delivered on commit, so a job enqueued in a transaction that rolls back wakes no one.
CREATE FUNCTION punctual.notify_pending() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  next_run timestamptz;
BEGIN
  SELECT min(run_at) INTO next_run FROM new_rows WHERE state = 'pending';
  IF next_run IS NOT NULL THEN
    PERFORM pg_notify('punctual_jobs', json_build_object('run_at', next_run)::text);
  END IF;
  RETURN NULL;
END
$fn$;
--> statement-breakpoint
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON punctual.jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION punctual.notify_pending();
--> statement-breakpoint
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON punctual.jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION punctual.notify_pending();
