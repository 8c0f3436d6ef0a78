import type { JobState } from "./schema.js";

/** A job as Punctual's API returns it: one row of `punctual.jobs`, in camelCase. */
export interface Job {
  id: number;
  task: string;
  queue: string;
  /** The payload as stored (JSON); handlers receive it parsed by the task's schema. */
  payload: unknown;
  key: string | null;
  state: JobState;
  priority: number;
  runAt: Date;
  /** Attempts started so far, including a running one. */
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  lastErrorStack: string | null;
  lockedBy: string | null;
  lockedUntil: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The columns every statement that returns whole jobs selects, in `toJob`'s terms. */
export const JOB_COLUMNS = `id, task, queue, payload, key, state, priority, run_at, attempts, max_attempts,
  last_error, last_error_stack, locked_by, locked_until, started_at, finished_at, created_at, updated_at`;

/** Maps a row selected with `JOB_COLUMNS` to a `Job`. */
export function toJob(row: Record<string, unknown>): Job {
  return {
    id: Number(row.id),
    task: row.task as string,
    queue: row.queue as string,
    payload: row.payload,
    key: (row.key as string | null) ?? null,
    state: row.state as JobState,
    priority: row.priority as number,
    runAt: row.run_at as Date,
    attempts: row.attempts as number,
    maxAttempts: row.max_attempts as number,
    lastError: (row.last_error as string | null) ?? null,
    lastErrorStack: (row.last_error_stack as string | null) ?? null,
    lockedBy: (row.locked_by as string | null) ?? null,
    lockedUntil: (row.locked_until as Date | null) ?? null,
    startedAt: (row.started_at as Date | null) ?? null,
    finishedAt: (row.finished_at as Date | null) ?? null,
    createdAt: row.created_at as Date,
    updatedAt: row.updated_at as Date,
  };
}
