/**
 * Which jobs an operator means: the filter the CLI's `jobs` and bulk `retry`, and the
 * dashboard's lists and bulk actions, share. Checked with zod at the boundary; turned
 * into a WHERE clause whose values all travel as parameters.
 */
import { z } from "zod";
import { storableString } from "../json.js";
import { jobState, type JobState } from "../schema.js";
import { zodError } from "../tasks.js";

/** Jobs to list or act on. Every field narrows; none given means every job. */
export interface JobFilter {
  /** One state or several. */
  state?: JobState | readonly JobState[];
  /** Exact task name. */
  task?: string;
  /** Exact queue name. */
  queue?: string;
  /** Jobs whose key starts with this text (exact characters: `%` and `_` are not wildcards). */
  keyPrefix?: string;
  /** Finished (succeeded, failed, cancelled) within this many milliseconds of now, by the database's clock. */
  finishedWithinMs?: number;
}

const nonEmpty = (what: string) => storableString(`must be ${what}`).min(1, `must be ${what}`);

export const jobFilterSchema = z.strictObject({
  state: z
    .union([z.enum(jobState.enumValues), z.array(z.enum(jobState.enumValues)).min(1, "must name at least one state")], {
      error: `must be one of ${jobState.enumValues.join(", ")}`,
    })
    .optional(),
  task: nonEmpty("a task name").optional(),
  queue: nonEmpty("a queue name").optional(),
  keyPrefix: nonEmpty("a non-empty key prefix").optional(),
  finishedWithinMs: z.number().positive("must be a positive duration").finite().optional(),
});

/** A checked filter, states as a list (null: any state). */
export interface CheckedFilter {
  states: JobState[] | null;
  task?: string;
  queue?: string;
  keyPrefix?: string;
  finishedWithinMs?: number;
}

/** Checks a filter; a `ValidationError` names the field (`state`, `task`, ...). */
export function checkFilter(filter: JobFilter = {}): CheckedFilter {
  const parsed = jobFilterSchema.safeParse(filter);
  if (!parsed.success) throw zodError("", parsed.error);
  const { state, ...rest } = parsed.data;
  return { ...rest, states: state === undefined ? null : [...new Set(Array.isArray(state) ? state : [state])] };
}

/** Collects parameter values and hands out their `$n` placeholders. */
export class Params {
  readonly values: unknown[] = [];

  /** The placeholder of a new parameter holding `value`. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * The filter's conditions on `alias` (ANDed by the caller). States are written as a
 * literal list of enum labels (Punctual's own constants, never user text), so that the
 * planner can match them against the partial indexes' predicates (`state = 'failed'`
 * implies `state in ('failed', 'cancelled')`); a parameter would hide the value from it.
 */
export function filterConditions(filter: CheckedFilter, params: Params, alias = "j"): string[] {
  const conditions: string[] = [];
  if (filter.states) {
    const labels = filter.states.filter((s) => jobState.enumValues.includes(s)).map((s) => `'${s}'`);
    conditions.push(labels.length === 1 ? `${alias}.state = ${labels[0]}` : `${alias}.state in (${labels.join(", ")})`);
  }
  if (filter.task !== undefined) conditions.push(`${alias}.task = ${params.add(filter.task)}`);
  if (filter.queue !== undefined) conditions.push(`${alias}.queue = ${params.add(filter.queue)}`);
  if (filter.keyPrefix !== undefined) {
    // LIKE with the wildcards escaped: in a database with the C collation the planner
    // turns it into a range on the key index; elsewhere it is a filter on the scan.
    conditions.push(`${alias}.key like ${params.add(likePrefix(filter.keyPrefix))}`);
  }
  if (filter.finishedWithinMs !== undefined) {
    conditions.push(`${alias}.finished_at >= now() - ${params.add(filter.finishedWithinMs)} * interval '1 millisecond'`);
  }
  return conditions;
}

/** A LIKE pattern matching text that starts with `prefix`, taken literally. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
