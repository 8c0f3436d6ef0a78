-- The jobs a worker holds, as rows, for its outcome statements: the successes it
-- records (with or without the next claim) and its lease renewals. They came as JSON
-- (jsonb_to_recordset), and reading it was about a tenth of PostgreSQL's CPU per job
-- in `bench/profile-process.ts` (jsonb parsing, then a numeric, a string and an integer
-- per field); three arrays are read for a fraction of that.
--
-- A function of its own, not unnest() in the statement: the planner must not know how
-- many rows come. Given an array, it counts it, and for a few hundred jobs on a large
-- table it planned a scan of the whole table instead of a primary-key lookup per job.
-- STRICT keeps it from being inlined (which would show the array again), and ROWS 100
-- is the estimate jsonb_to_recordset gave, whose plans test/integration/outcome-cost.test.ts
-- keeps proportional to the jobs. `started_ago` may be shorter (empty): nulls fill it.
CREATE OR REPLACE FUNCTION punctual.held_jobs(job_ids bigint[], job_attempts integer[], started_ago integer[])
RETURNS TABLE (id bigint, attempt integer, started_ago_ms integer)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 100
AS $fn$ SELECT * FROM unnest(job_ids, job_attempts, started_ago) $fn$;
