-- Operator queries (the CLI's jobs, stats and retry --failed; the dashboard): failed
-- and cancelled rows are few among finished ones, and an operator asks for them often.
-- Without indexes of their own each of those questions reads every finished row kept
-- for retention. Rows enter these indexes only when they end failed or cancelled, so
-- the hot path (enqueue, claim, success) does not pay for them.
--
-- jobs_failed_cancelled_idx: the newest failed (or cancelled) jobs, a page at a time
-- (state = 'failed' order by id desc: a backward scan of the page, keyset by id), and
-- their bounded counts.
CREATE INDEX "jobs_failed_cancelled_idx" ON "punctual"."jobs" USING btree ("state","id") WHERE "punctual"."jobs"."state" in ('failed', 'cancelled');--> statement-breakpoint
-- jobs_failed_at_idx: failures in a time window (the last hour in stats; retry --failed
-- --since), without reading the window's successes.
CREATE INDEX "jobs_failed_at_idx" ON "punctual"."jobs" USING btree ("finished_at") WHERE "punctual"."jobs"."state" = 'failed';
