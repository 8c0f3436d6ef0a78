/**
 * Retry, cancel and run now: on one job (`/jobs/42/retry`) or on every job of a filter
 * (`/actions/retry?state=failed&task=x`). A GET shows what will happen and a form; only
 * its POST acts, through the same functions as the CLI (`src/ops/actions.ts`), then
 * redirects (303) to the job or the list, with a signed notice of what was done.
 */
import type { Executor } from "../../executor.js";
import { ACTION_STATES, cancelJobs, retryJobs, runNow, type ActionResult, type ActionTarget } from "../../ops/actions.js";
import { countJobs } from "../../ops/count.js";
import { getJob } from "../../ops/jobs.js";
import type { JobState } from "../../schema.js";
import { HttpError, link, redirect, type RequestContext } from "../context.js";
import { count, short, state } from "../format.js";
import { html, type Html } from "../html.js";
import { page } from "../layout.js";
import { filterLinkParams, filterParams, toJobFilter, type FilterParams } from "../params.js";

/** One action as the pages offer it. */
export interface ActionSpec {
  /** The button's label. */
  label: string;
  /** The states it applies to. */
  states: readonly JobState[];
  run: (executor: Executor, target: ActionTarget) => Promise<ActionResult>;
  /** What it does, said on the confirmation page. */
  explain: string;
  /** The past tense, for the notice. */
  done: string;
  /** Whether the button looks dangerous. */
  danger: boolean;
}

/** The actions, by the name their addresses use. */
export const ACTIONS: Record<string, ActionSpec> = {
  retry: {
    label: "Retry",
    states: ACTION_STATES.retry,
    run: retryJobs,
    done: "retried",
    danger: false,
    explain:
      "A failed job goes back to pending, due now. Attempts are not reset: the count goes on, and a job that used them all gets one more. " +
      "A job whose key already has a live job is skipped (a key has at most one).",
  },
  cancel: {
    label: "Cancel",
    states: ACTION_STATES.cancel,
    run: cancelJobs,
    done: "cancelled",
    danger: true,
    explain:
      "A pending job ends cancelled; a running one is asked to stop (its handler's signal fires), is not retried, and ends cancelled unless it succeeds. " +
      "Cancelling a schedule's occurrence ends the schedule: nothing follows it.",
  },
  "run-now": {
    label: "Run now",
    states: ACTION_STATES.runNow,
    run: runNow,
    done: "made due now",
    danger: false,
    explain: "A pending job becomes due now. A schedule's occurrence keeps its slot, so the schedule's later runs do not move.",
  },
};

function actionOf(name: string): ActionSpec {
  const spec = ACTIONS[name];
  if (!spec) throw new HttpError(404, `no action "${name}"`);
  return spec;
}

/** Links to the confirmation pages of the actions that apply to a job in `jobState` (none when read-only). */
export function jobActionLinks(ctx: RequestContext, id: number, jobState: JobState): Html {
  if (ctx.readOnly) return html``;
  const names = Object.keys(ACTIONS).filter((name) => ACTIONS[name]!.states.includes(jobState));
  if (names.length === 0) return html``;
  return html`<div class="actions">${names.map(
    (name) => html`<a class="button${ACTIONS[name]!.danger ? " danger" : " secondary"}" data-action="${name}" href="${link(ctx, `/jobs/${id}/${name}`)}">${ACTIONS[name]!.label}</a>`,
  )}</div>`;
}

/** Links to the bulk confirmations that apply to a filter with a state (none when read-only, or without a state). */
export function bulkActionLinks(ctx: RequestContext, filter: FilterParams): Html {
  if (ctx.readOnly || !filter.state) return html``;
  const names = Object.keys(ACTIONS).filter((name) => ACTIONS[name]!.states.includes(filter.state!));
  if (names.length === 0) return html``;
  return html`<div class="actions">${names.map(
    (name) =>
      html`<a class="button${ACTIONS[name]!.danger ? " danger" : " secondary"}" data-bulk-action="${name}" href="${link(ctx, `/actions/${name}`, filterLinkParams(filter))}">${ACTIONS[name]!.label} all ${filter.state} jobs that match</a>`,
  )}</div>`;
}

function refuseReadOnly(ctx: RequestContext): void {
  if (ctx.readOnly) throw new HttpError(403, "this dashboard is read-only: actions are off");
}

function confirmForm(ctx: RequestContext, spec: ActionSpec, question: Html, cancelHref: string): Html {
  return html`
<form method="post" class="confirm" action="${link(ctx, ctx.path, Object.fromEntries(ctx.query))}">
  <p>${question}</p>
  <p class="muted">${spec.explain}</p>
  <input type="hidden" name="csrf" value="${ctx.csrf}">
  <div class="actions">
    <button type="submit" class="${spec.danger ? "danger" : ""}" id="confirm">${spec.label}</button>
    <a class="button secondary" href="${cancelHref}">Back</a>
  </div>
</form>`;
}

/** GET /jobs/:id/:action: what the action will do to the job. */
export async function jobActionPage(ctx: RequestContext, id: number, name: string): Promise<string> {
  const spec = actionOf(name);
  refuseReadOnly(ctx);
  const job = await getJob(ctx.db, { id }, { historyLimit: 0 });
  if (!job) throw new HttpError(404, `no job ${id}`);
  const back = link(ctx, `/jobs/${id}`);
  const applies = spec.states.includes(job.state);
  const what = html`job <a href="${back}">${id}</a> (task ${job.task}${job.key !== null ? html`, key <code>${job.key}</code>` : ""}, ${state(job.state)}, attempts ${job.attempts} of ${job.maxAttempts})`;
  return page(ctx, {
    title: `${spec.label} job ${id}`,
    here: "/jobs",
    body: html`<h1>${spec.label} job ${id}?</h1>
${applies
  ? confirmForm(ctx, spec, html`${spec.label} ${what}?`, back)
  : html`<div class="confirm"><p>${spec.label} does not apply to ${what}: it applies to ${spec.states.join(" and ")} jobs.</p>
      <a class="button secondary" href="${back}">Back</a></div>`}`,
  });
}

/** POST /jobs/:id/:action: acts, then back to the job with what happened. */
export async function jobActionPost(ctx: RequestContext, id: number, name: string): Promise<void> {
  const spec = actionOf(name);
  refuseReadOnly(ctx);
  const result = await spec.run(ctx.db, { id });
  const changed = result.changed[0];
  const skipped = result.skipped[0];
  let notice: { text: string; bad: boolean };
  if (changed && name === "cancel" && changed.state === "running") {
    notice = { text: `Cancel requested for running job ${id}: its handler's signal fires; it is not retried, and ends cancelled unless it succeeds.`, bad: false };
  } else if (changed) notice = { text: `Job ${id} ${spec.done}: now ${changed.state}.`, bad: false };
  else if (skipped) notice = { text: `Job ${id} not ${spec.done}: ${skipped.reason}.`, bad: true };
  else notice = { text: `No job ${id}.`, bad: true };
  redirect(ctx.res, link(ctx, `/jobs/${id}`, { notice: ctx.guard.sign(JSON.stringify(notice)) }));
}

/** The states a bulk action reads: its own, within the filter's state. */
function bulkStates(spec: ActionSpec, filter: FilterParams): JobState[] {
  return spec.states.filter((s) => filter.state === undefined || s === filter.state);
}

function describeFilter(filter: FilterParams): Html {
  const parts: Html[] = [];
  if (filter.task) parts.push(html` of task <code>${filter.task}</code>`);
  if (filter.queue) parts.push(html` in queue <code>${filter.queue}</code>`);
  if (filter.key) parts.push(html` whose key starts with <code>${filter.key}</code>`);
  return html`${parts}`;
}

/** GET /actions/:action?filter: how many jobs the action will touch, and a form. */
export async function bulkActionPage(ctx: RequestContext, name: string): Promise<string> {
  const spec = actionOf(name);
  refuseReadOnly(ctx);
  const filter = filterParams(ctx.query);
  const states = bulkStates(spec, filter);
  const back = link(ctx, "/jobs", filterLinkParams(filter));
  let body: Html;
  if (states.length === 0) {
    body = html`<div class="confirm"><p>${spec.label} applies to ${spec.states.join(" and ")} jobs; this filter asks for ${filter.state} ones.</p>
      <a class="button secondary" href="${back}">Back</a></div>`;
  } else {
    const matched = await countJobs(ctx.db, { ...toJobFilter(filter), state: states });
    const what = html`<strong id="matched">${count(matched)}</strong> ${states.join(" or ")} job${matched.count === 1 && !matched.capped ? "" : "s"}${describeFilter(filter)}`;
    body =
      matched.count === 0
        ? html`<div class="confirm"><p>No ${states.join(" or ")} jobs${describeFilter(filter)}: nothing to do.</p><a class="button secondary" href="${back}">Back</a></div>`
        : confirmForm(ctx, spec, html`${spec.label} ${what}?${matched.capped ? html` <span class="muted">(counted up to ${matched.count.toLocaleString("en-US")}; the action takes them all, 1,000 at a time)</span>` : ""}`, back);
  }
  return page(ctx, { title: `${spec.label} jobs`, here: "/jobs", body: html`<h1>${spec.label} jobs</h1>${body}` });
}

/** POST /actions/:action?filter: acts on every match, then back to the list with what happened. */
export async function bulkActionPost(ctx: RequestContext, name: string): Promise<void> {
  const spec = actionOf(name);
  refuseReadOnly(ctx);
  const filter = filterParams(ctx.query);
  const states = bulkStates(spec, filter);
  const result: ActionResult = states.length ? await spec.run(ctx.db, { filter: { ...toJobFilter(filter), state: states } }) : { changed: [], skipped: [] };
  const n = result.changed.length;
  const lines = [`${spec.label}: ${n} job${n === 1 ? "" : "s"} ${spec.done}.`];
  if (result.skipped.length) {
    const reasons = result.skipped.slice(0, 5).map((s) => `job ${s.id}: ${short(s.reason, 100)}`);
    lines.push(`Skipped ${result.skipped.length}: ${reasons.join("; ")}${result.skipped.length > 5 ? "; ..." : ""}.`);
  }
  const notice = { text: lines.join(" "), bad: n === 0 };
  redirect(ctx.res, link(ctx, "/jobs", { ...filterLinkParams(filter), notice: ctx.guard.sign(JSON.stringify(notice)) }));
}
