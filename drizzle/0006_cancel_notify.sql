-- A cancel of a running job reaches the worker that runs it at once: the cancel sets
-- cancel_requested_at, and this trigger sends NOTIFY on the workers' channel with the
-- job's id and its lease holder, so that worker fires the handler's AbortSignal
-- ("cancelled") now rather than at its next lease renewal (which stays the fallback, for
-- workers that do not LISTEN). Any way of cancelling is covered: the client's
-- cancel(key), and a plain SQL `update punctual.jobs set cancel_requested_at = now()`.
-- Delivered on commit, like every NOTIFY.
CREATE FUNCTION punctual.notify_cancel_row() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('punctual_jobs', json_build_object('cancel', NEW.id, 'locked_by', NEW.locked_by)::text);
  RETURN NULL;
END
$fn$;
--> statement-breakpoint
CREATE TRIGGER jobs_notify_cancel AFTER UPDATE OF cancel_requested_at ON punctual.jobs
  FOR EACH ROW WHEN (OLD.cancel_requested_at IS NULL AND NEW.cancel_requested_at IS NOT NULL AND NEW.state = 'running')
  EXECUTE FUNCTION punctual.notify_cancel_row();
