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
export {
  LeaseLostError,
  PermanentError,
  PunctualError,
  RETRY_AFTER_MAX_MS,
  RetryAfterError,
  UnknownTaskError,
  ValidationError,
} from "./errors.js";
export type { HandlerErrorOptions } from "./errors.js";
export { RESULT_MAX_BYTES } from "./worker/outcome-batcher.js";
export { httpRequest, httpTask, HTTP_TASK_NAME, HTTP_RETRY_AFTER_MAX_MS } from "./http/task.js";
export type { HttpTaskOptions } from "./http/task.js";
export { httpRequestPayload, HTTP_METHODS } from "./http/payload.js";
export type { HttpRequestPayload, StatusSpec } from "./http/payload.js";
export type { HttpResult } from "./http/response.js";
export type { AddressPolicyOptions } from "./http/address.js";
export type { Lookup, LookupAddress } from "./http/connector.js";
export type { SecretSource, Secrets } from "./http/secrets.js";
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
export { createDashboard } from "./dashboard/dashboard.js";
export type { DashboardHandler, DashboardOptions } from "./dashboard/dashboard.js";
export { startDashboard } from "./dashboard/server.js";
export type { RunningDashboard, StartDashboardOptions } from "./dashboard/server.js";
export type { DashboardAuth } from "./dashboard/security.js";
