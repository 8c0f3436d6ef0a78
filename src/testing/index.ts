/**
 * `punctual/testing`: helpers for testing an app that uses Punctual, in any test
 * runner (none is imported). Assert what was enqueued (`expectEnqueued`,
 * `listEnqueued`), run a handler in-process (`runJob`), and run due jobs — retries and
 * periodic occurrences included, "as of" a later instant if need be — with a real
 * worker (`drain`). See the README, "Testing your app".
 */
export { expectEnqueued, listEnqueued } from "./enqueued.js";
export type { EnqueuedJob, ExpectEnqueuedOptions, ListEnqueuedOptions, PayloadMatcher, StateFilter } from "./enqueued.js";
export type { AsymmetricMatcher, PayloadPattern } from "./match.js";
export { runJob } from "./run-job.js";
export type { RunJobOptions } from "./run-job.js";
export { drain, DrainLimitError } from "./drain.js";
export type { DrainOptions, DrainResult, DrainRun } from "./drain.js";
