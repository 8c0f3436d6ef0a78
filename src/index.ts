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
export type { JobEvent, WorkerEvents, WorkerOptions } from "./worker/worker.js";
export type { BackoffOptions } from "./worker/backoff.js";
export { defineTask } from "./tasks.js";
export type { AnyTask, JobContext, Task, TaskDefaults, TaskDefinition } from "./tasks.js";
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
