-- Two nullable columns, added without a default: no table rewrite, no hot-path cost
-- for rows that leave them null.
-- trace_context: the W3C trace context (traceparent, tracestate) of the code that
-- enqueued the job, when OpenTelemetry was active there; the job's run span links to it.
ALTER TABLE "punctual"."jobs" ADD COLUMN "trace_context" jsonb;--> statement-breakpoint
-- result: what the last attempt left for operators (a handler's return value, or the
-- HTTP task's status, duration and body excerpt), bounded in size by the worker.
ALTER TABLE "punctual"."jobs" ADD COLUMN "result" jsonb;
