/**
 * The query parameters of the dashboard's pages, checked at the boundary: a bad one is
 * a 400 page that names it, before any query runs.
 */
import { ValidationError } from "../errors.js";
import type { JobFilter } from "../ops/filter.js";
import type { JobOrder } from "../ops/jobs.js";
import { jobState, type JobState } from "../schema.js";
import { HttpError } from "./context.js";

/** The jobs filter as the address carries it: `state`, `task`, `queue`, `key` (a prefix). */
export interface FilterParams {
  state?: JobState;
  task?: string;
  queue?: string;
  key?: string;
}

/** The longest text a filter field takes (task names are at most 128 characters; keys 255). */
const FIELD_MAX = 255;

/** Reads the filter parameters; an unknown state or an overlong value is a 400. */
export function filterParams(query: URLSearchParams): FilterParams {
  const text = (name: string) => {
    const value = query.get(name)?.trim();
    if (!value) return undefined;
    if (value.length > FIELD_MAX) throw new HttpError(400, `${name} must be at most ${FIELD_MAX} characters`);
    return value;
  };
  const state = text("state");
  if (state !== undefined && !(jobState.enumValues as readonly string[]).includes(state)) {
    throw new HttpError(400, `state must be one of ${jobState.enumValues.join(", ")}; got "${state}"`);
  }
  return { state: state as JobState | undefined, task: text("task"), queue: text("queue"), key: text("key") };
}

/** The filter in `listJobs` / `countJobs` terms. */
export function toJobFilter(params: FilterParams): JobFilter {
  return { state: params.state, task: params.task, queue: params.queue, keyPrefix: params.key };
}

/** The filter as link parameters. */
export function filterLinkParams(params: FilterParams): Record<string, string | undefined> {
  return { state: params.state, task: params.task, queue: params.queue, key: params.key };
}

/** `order`: `newest` (default) or `due`; anything else is a 400. */
export function orderParam(query: URLSearchParams): JobOrder {
  const order = query.get("order") || "newest";
  if (order !== "newest" && order !== "due") throw new HttpError(400, `order must be newest or due; got "${order}"`);
  return order;
}

/** A job id from the path: a positive integer. */
export function jobIdParam(text: string): number {
  const id = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(id) || id < 1) throw new HttpError(400, `"${text}" is not a job id (ids are positive integers)`);
  return id;
}

/** The parameter a field of an ops `ValidationError` came from. */
const FIELD_PARAMS: Record<string, string> = { keyPrefix: "key", cursor: "cursor", order: "order", state: "state", task: "task", queue: "queue", key: "key" };

/** A `ValidationError` from `src/ops` as a 400 that names the parameter. */
export function badParameter(error: ValidationError): HttpError {
  const field = error.field.split(".")[0]!;
  const param = FIELD_PARAMS[field];
  const message = param && error.message.startsWith(`${error.field}: `) ? `${param}: ${error.message.slice(error.field.length + 2)}` : error.message;
  return new HttpError(400, message);
}
