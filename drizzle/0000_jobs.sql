CREATE SCHEMA IF NOT EXISTS "punctual";
--> statement-breakpoint
CREATE TYPE "punctual"."job_state" AS ENUM('pending', 'running', 'succeeded', 'failed', 'cancelled');--> statement-breakpoint
CREATE TABLE "punctual"."jobs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "punctual"."jobs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"queue" text DEFAULT 'default' NOT NULL,
	"task" text NOT NULL,
	"payload" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"key" text,
	"state" "punctual"."job_state" DEFAULT 'pending' NOT NULL,
	"priority" smallint DEFAULT 0 NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer DEFAULT 5 NOT NULL,
	"last_error" text,
	"last_error_stack" text,
	"locked_by" text,
	"locked_until" timestamp with time zone,
	"cancel_requested_at" timestamp with time zone,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"cron" text,
	"tz" text,
	"every_ms" bigint,
	"fixed_delay" boolean DEFAULT false NOT NULL,
	"missed" text DEFAULT 'once' NOT NULL,
	"slot_at" timestamp with time zone,
	"declared" boolean DEFAULT false NOT NULL,
	CONSTRAINT "jobs_priority_range" CHECK ("punctual"."jobs"."priority" between -10 and 10),
	CONSTRAINT "jobs_attempts_valid" CHECK ("punctual"."jobs"."attempts" >= 0 and "punctual"."jobs"."max_attempts" >= 1),
	CONSTRAINT "jobs_key_length" CHECK (char_length("punctual"."jobs"."key") between 1 and 255),
	CONSTRAINT "jobs_task_not_empty" CHECK (char_length("punctual"."jobs"."task") between 1 and 128),
	CONSTRAINT "jobs_queue_not_empty" CHECK (char_length("punctual"."jobs"."queue") between 1 and 64),
	CONSTRAINT "jobs_one_rule" CHECK ("punctual"."jobs"."cron" is null or "punctual"."jobs"."every_ms" is null),
	CONSTRAINT "jobs_every_positive" CHECK ("punctual"."jobs"."every_ms" > 0),
	CONSTRAINT "jobs_missed_policy" CHECK ("punctual"."jobs"."missed" in ('once', 'skip', 'all'))
);
--> statement-breakpoint
CREATE INDEX "jobs_claim_idx" ON "punctual"."jobs" USING btree ("priority","run_at","id") WHERE "punctual"."jobs"."state" = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_live_key_idx" ON "punctual"."jobs" USING btree ("key") WHERE "punctual"."jobs"."state" in ('pending', 'running');--> statement-breakpoint
CREATE INDEX "jobs_key_idx" ON "punctual"."jobs" USING btree ("key","id") WHERE "punctual"."jobs"."key" is not null;--> statement-breakpoint
CREATE INDEX "jobs_lease_idx" ON "punctual"."jobs" USING btree ("locked_until") WHERE "punctual"."jobs"."state" = 'running';--> statement-breakpoint
CREATE INDEX "jobs_finished_idx" ON "punctual"."jobs" USING btree ("finished_at") WHERE "punctual"."jobs"."state" in ('succeeded', 'failed', 'cancelled');