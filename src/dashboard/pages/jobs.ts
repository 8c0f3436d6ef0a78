/**
 * The jobs list (filtered, keyset-paged through `listJobs`' cursor) and one job in full
 * (`getJob`: payload, error and stack, timeline, the other jobs of its key).
 */
import { getJobResult } from "../../ops/job-result.js";
import { getJob, listJobs, type JobSummary } from "../../ops/jobs.js";
import { jobState } from "../../schema.js";
import { HttpError, link, type RequestContext } from "../context.js";
import { age, prettyJson, short, state, when } from "../format.js";
import { html, type Html } from "../html.js";
import { page } from "../layout.js";
import { filterLinkParams, filterParams, orderParam, toJobFilter } from "../params.js";
import { ruleInWords } from "../rule-words.js";
import { bulkActionLinks, jobActionLinks } from "./actions.js";

/** Jobs per page. */
export const JOBS_PAGE_SIZE = 50;

/** GET /jobs: a page of jobs for the filter in the address. */
export async function jobsPage(ctx: RequestContext): Promise<string> {
  const filter = filterParams(ctx.query);
  const order = orderParam(ctx.query);
  const cursor = ctx.query.get("cursor") || undefined;
  const { jobs, nextCursor } = await listJobs(ctx.db, { ...toJobFilter(filter), order, cursor, limit: JOBS_PAGE_SIZE });
  const params = { ...filterLinkParams(filter), order: order === "newest" ? undefined : order };
  const option = (value: string, label: string, selected: boolean) => html`<option value="${value}"${selected ? html` selected` : ""}>${label}</option>`;
  return page(ctx, {
    title: "Jobs",
    here: "/jobs",
    body: html`
<h1>Jobs</h1>
<form class="filters" method="get" action="${link(ctx, "/jobs")}">
  <label>State <select name="state" id="filter-state">${option("", "any", !filter.state)}${jobState.enumValues.map((s) => option(s, s, filter.state === s))}</select></label>
  <label>Task <input name="task" value="${filter.task ?? ""}" size="16"></label>
  <label>Queue <input name="queue" value="${filter.queue ?? ""}" size="10"></label>
  <label>Key starts with <input name="key" value="${filter.key ?? ""}" size="16"></label>
  <label>Order <select name="order">${option("newest", "newest first", order === "newest")}${option("due", "earliest due (pending)", order === "due")}</select></label>
  ${ctx.zoneSource === "query" ? html`<input type="hidden" name="tz" value="${ctx.zone}">` : ""}
  <button type="submit" id="apply-filter">Apply</button>
  <a href="${link(ctx, "/jobs")}">Clear</a>
</form>
${bulkActionLinks(ctx, filter)}
${jobs.length ? jobTable(ctx, jobs) : html`<p class="muted" id="no-jobs">No jobs match.</p>`}
<div class="pager">
  ${cursor ? html`<a href="${link(ctx, "/jobs", params)}">First page</a>` : ""}
  ${nextCursor ? html`<a href="${link(ctx, "/jobs", { ...params, cursor: nextCursor })}" id="next-page">Next page</a>` : ""}
</div>`,
  });
}

/** Jobs as a table, each linking to its page. */
export function jobTable(ctx: RequestContext, jobs: JobSummary[], id = "jobs"): Html {
  return html`
<table id="${id}">
  <thead><tr><th>Id</th><th>State</th><th>Task</th><th>Queue</th><th>Key</th><th class="num">Attempts</th><th>Run at</th><th>Finished</th><th>Last error</th></tr></thead>
  <tbody>
  ${jobs.map(
    (j) => html`<tr data-job-id="${j.id}">
      <td><a href="${link(ctx, `/jobs/${j.id}`)}">${j.id}</a></td>
      <td>${state(j.state)}${j.periodic ? html` <span class="muted" title="an occurrence of a schedule">↻</span>` : ""}</td>
      <td>${j.task}</td>
      <td>${j.queue}</td>
      <td>${j.key === null ? html`<span class="muted">-</span>` : html`<code>${short(j.key, 48)}</code>`}</td>
      <td class="num">${j.attempts}/${j.maxAttempts}</td>
      <td>${when(j.runAt, ctx.zone)}</td>
      <td>${when(j.finishedAt, ctx.zone)}</td>
      <td class="err" title="${j.lastError ?? ""}">${short(j.lastError, 90)}</td>
    </tr>`,
  )}
  </tbody>
</table>`;
}

/** GET /jobs/:id: one job in full. */
export async function jobPage(ctx: RequestContext, id: number): Promise<string> {
  const [job, result] = await Promise.all([getJob(ctx.db, { id }), getJobResult(ctx.db, id)]);
  if (!job) throw new HttpError(404, `no job ${id} (it may have been pruned after its retention)`);
  const field = (name: string, value: Html | string) => html`<tr><th>${name}</th><td>${value}</td></tr>`;
  const now = Date.now();
  const timeline: [string, Date | null][] = [
    ["created", job.createdAt],
    ["run at", job.runAt],
    ...(job.slotAt ? ([["slot", job.slotAt]] as [string, Date][]) : []),
    ["started", job.startedAt],
    ["finished", job.finishedAt],
    ...(job.cancelRequestedAt ? ([["cancel requested", job.cancelRequestedAt]] as [string, Date][]) : []),
    ["updated", job.updatedAt],
  ];
  return page(ctx, {
    title: `Job ${id}`,
    here: "/jobs",
    body: html`
<h1>Job ${id} · ${job.task} ${state(job.state)}</h1>
${jobActionLinks(ctx, id, job.state)}
<table class="fields" id="job-fields">
  ${field("state", html`${state(job.state)}${job.cancelRequestedAt ? html` <span class="muted">cancel requested</span>` : ""}`)}
  ${field("task", job.task)}
  ${field("queue", job.queue)}
  ${field("key", job.key === null ? html`<span class="muted">-</span>` : html`<code>${job.key}</code>`)}
  ${field("priority", String(job.priority))}
  ${field("attempts", html`<span id="attempts">${job.attempts} of ${job.maxAttempts}</span>`)}
  ${job.lockedBy ? field("held by", html`<code>${job.lockedBy}</code>, lease until ${when(job.lockedUntil, ctx.zone)}`) : ""}
  ${job.rule
    ? field(
        "schedule",
        html`${ruleInWords(job.rule)} <code>${job.rule.kind === "cron" ? `${job.rule.cron} (${job.rule.tz})` : `every ${job.rule.everyMs} ms`}</code>,
          missed runs: ${job.rule.missed}${job.declared ? ", declared in code" : ""}
          ${job.key !== null ? html` · <a href="${link(ctx, "/schedule", { key: job.key })}">the schedule</a>` : ""}`,
      )
    : ""}
</table>
<h2>Timeline</h2>
<table class="fields" id="timeline">
  ${timeline.map(([name, at]) => field(name, at ? html`${when(at, ctx.zone)} <span class="muted">(${at.getTime() <= now ? `${age(now - at.getTime())} ago` : `in ${age(at.getTime() - now)}`})</span>` : html`<span class="muted">-</span>`))}
</table>
<h2>Payload</h2>
<pre id="payload">${prettyJson(job.payload)}</pre>
${job.lastError !== null ? html`<h2>Last error</h2><pre class="error" id="last-error">${job.lastError}</pre>` : ""}
${job.lastErrorStack !== null ? html`<h2>Stack</h2><pre class="error" id="stack">${job.lastErrorStack}</pre>` : ""}
${result !== null ? html`<h2>Result</h2><pre id="result">${prettyJson(result)}</pre>` : ""}
${job.key !== null
  ? html`<h2>Other jobs with this key</h2>${job.history.length ? jobTable(ctx, job.history, "history") : html`<p class="muted">None (earlier ones may have been pruned).</p>`}`
  : ""}`,
  });
}
