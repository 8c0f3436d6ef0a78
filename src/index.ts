export { createClient, Client } from "./client.js";
export type {
  ClientOptions,
  EnqueueOptions,
  EnqueueResult,
  ExecutorOption,
  JobOptions,
  JobSpec,
  OnConflict,
  ReconcileResult,
  ScheduleOptions,
  ScheduleResult,
  ScheduleSpec,
} from "./client.js";
export { upcomingSlots } from "./schedule/next.js";
export { MISSED_ALL_LIMIT, EVERY_MIN_MS, EVERY_MAX_MS } from "./schedule/rule.js";
export type { MissedPolicy, ScheduleRule } from "./schedule/rule.js";
export { createWorker, Worker } from "./worker/worker.js";
export type { JobEvent, WorkerEvents, WorkerHealth, WorkerOptions } from "./worker/worker.js";
export { createMetrics } from "./metrics/metrics.js";
export type { MetricsOptions, WorkerMetrics } from "./metrics/metrics.js";
export { listenMetrics } from "./metrics/server.js";
export type { Readiness } from "./metrics/readiness.js";
export type { QueueStatsOptions } from "./metrics/queue-stats.js";
export type { BackoffOptions } from "./worker/backoff.js";
export { defineTask } from "./tasks.js";
export type {
  AnyTask,
  JobContext,
  PayloadInput,
  PayloadOutput,
  PayloadSchema,
  StandardSchemaV1,
  Task,
  TaskDefaults,
  TaskDefinition,
} from "./tasks.js";
export { migrate } from "./migrate.js";
export type { Executor } from "./executor.js";
export type { Job } from "./job.js";
export { LeaseLostError, PunctualError, UnknownTaskError, ValidationError } from "./errors.js";
export { jobs, jobState, punctualSchema, PRIORITY_MAX, PRIORITY_MIN, KEY_MAX_LENGTH } from "./schema.js";
export type { JobRow, JobState } from "./schema.js";
export { PAYLOAD_MAX_BYTES } from "./json.js";
export { createLogger } from "./logger.js";
export type { Logger } from "./logger.js";
export type { Duration } from "./schedule/duration.js";
export { listJobs, getJob } from "./ops/jobs.js";
export type { JobDetail, JobOrder, JobPage, JobRef, JobSummary, ListJobsOptions } from "./ops/jobs.js";
export type { JobFilter } from "./ops/filter.js";
export { listSchedules } from "./ops/schedules.js";
export type { ListSchedulesOptions, SchedulePage, ScheduleSummary } from "./ops/schedules.js";
export type { RuleView } from "./ops/rule-view.js";
export { jobStats } from "./ops/stats.js";
export type { BoundedCount, JobStats, QueueStats } from "./ops/stats.js";
export { cancelJobs, retryJobs, runNow } from "./ops/actions.js";
export type { ActionResult, ActionTarget, ChangedJob, SkippedJob } from "./ops/actions.js";
export { enqueueJson } from "./ops/enqueue.js";
export type { EnqueueJsonOptions } from "./ops/enqueue.js";
