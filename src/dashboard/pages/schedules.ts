/**
 * Schedules: every live row that carries a rule (`listSchedules`), its rule in words,
 * its next runs in its own zone and in the viewer's, and its recent occurrences with
 * late and missed marks (`recentOccurrences`). One schedule in full at `/schedule?key=`.
 */
import { getJob } from "../../ops/jobs.js";
import { missedBetween, recentOccurrences, toRule, type Occurrence } from "../../ops/occurrences.js";
import { nextRunOf, ruleZone, type RuleView } from "../../ops/rule-view.js";
import { listSchedules } from "../../ops/schedules.js";
import { nextRunAt } from "../../schedule/next.js";
import { HttpError, link, type RequestContext } from "../context.js";
import { age, local, short, state, when } from "../format.js";
import { html, type Html } from "../html.js";
import { page } from "../layout.js";
import { filterParams } from "../params.js";
import { durationInWords, ruleInWords } from "../rule-words.js";
import { jobActionLinks } from "./actions.js";

/** Schedules per page. */
export const SCHEDULES_PAGE_SIZE = 50;

/** How far past its slot a start must be to be marked late. */
export const LATE_AFTER_MS = 60_000;

function ruleCell(rule: RuleView): Html {
  return html`${ruleInWords(rule)}<br><code class="muted">${rule.kind === "cron" ? rule.cron : `every ${rule.everyMs} ms${rule.fixedDelay ? ", fixed delay" : ""}`}</code>`;
}

/** The same instant in the schedule's zone (with its offset) and, when it differs, in the viewer's. */
function bothZones(ctx: RequestContext, instant: Date | null, zone: string): [Html, Html] {
  if (!instant) return [html`<span class="muted">-</span>`, html`<span class="muted">-</span>`];
  return [
    html`<time class="schedule-zone" datetime="${instant.toISOString()}" title="${instant.toISOString()}">${local(instant, zone, true)}</time>`,
    html`<time class="viewer-zone" datetime="${instant.toISOString()}" title="${instant.toISOString()}">${local(instant, ctx.zone, true)}</time>`,
  ];
}

/** Marks for occurrences, oldest first: outcome, late, missed slots before it. */
function marks(ctx: RequestContext, occurrences: Occurrence[]): Html {
  if (occurrences.length === 0) return html`<span class="muted">none yet</span>`;
  return html`${[...occurrences].reverse().map((o) => {
    const symbol = o.state === "succeeded" ? "✓" : o.state === "failed" ? "✗" : "–";
    const title = `job ${o.id}: ${o.state}${o.slotAt ? `, slot ${o.slotAt.toISOString()}` : ""}`;
    return html`${o.missedBefore ? html`<span class="mark mark-missed" title="${o.missedBefore} slot(s) missed before it">${o.missedBefore >= 100 ? "100+" : o.missedBefore} missed</span>` : ""}<a class="mark mark-${o.state}" href="${link(ctx, `/jobs/${o.id}`)}" title="${title}">${symbol}</a>${o.lateMs !== null ? html`<span class="mark mark-late" title="started ${age(o.lateMs)} after its slot">late ${age(o.lateMs)}</span>` : ""}`;
  })}`;
}

/** GET /schedules: a page of schedules (filter by task, queue, key prefix; keyset by key). */
export async function schedulesPage(ctx: RequestContext): Promise<string> {
  const filter = filterParams(ctx.query);
  const cursor = ctx.query.get("cursor") || undefined;
  const { schedules, nextCursor } = await listSchedules(ctx.db, { task: filter.task, queue: filter.queue, keyPrefix: filter.key, cursor, limit: SCHEDULES_PAGE_SIZE });
  const recent = await recentOccurrences(ctx.db, schedules.map((s) => ({ key: s.key, rule: s.rule })), { perKey: 5, lateAfterMs: LATE_AFTER_MS });
  const params = { task: filter.task, queue: filter.queue, key: filter.key };
  return page(ctx, {
    title: "Schedules",
    here: "/schedules",
    body: html`
<h1>Schedules</h1>
<form class="filters" method="get" action="${link(ctx, "/schedules")}">
  <label>Task <input name="task" value="${filter.task ?? ""}" size="16"></label>
  <label>Queue <input name="queue" value="${filter.queue ?? ""}" size="10"></label>
  <label>Key starts with <input name="key" value="${filter.key ?? ""}" size="16"></label>
  ${ctx.zoneSource === "query" ? html`<input type="hidden" name="tz" value="${ctx.zone}">` : ""}
  <button type="submit">Apply</button>
</form>
${schedules.length === 0
  ? html`<p class="muted">No schedules${filter.task || filter.queue || filter.key ? " match" : ""}.</p>`
  : html`
<table id="schedules">
  <thead><tr><th>Key</th><th>Task</th><th>Rule</th><th>Zone</th><th>Next run (its zone)</th><th>Next run (your zone: ${ctx.zone})</th><th>State</th><th>Recent runs</th></tr></thead>
  <tbody>
  ${schedules.map((s) => {
    const [theirs, yours] = bothZones(ctx, s.nextRunAt, s.zone);
    const older = recent.get(s.key) ?? [];
    const missedNow = s.state === "pending" && older[0] ? missedBetween(toRule(s.rule), older[0].slotAt, s.slotAt) : 0;
    return html`<tr data-key="${s.key}">
      <td><a href="${link(ctx, "/schedule", { key: s.key })}"><code>${short(s.key, 48)}</code></a></td>
      <td>${s.task}<br><span class="muted">${s.queue}</span></td>
      <td>${ruleCell(s.rule)}</td>
      <td>${s.zone}<br><span class="muted">missed: ${s.rule.missed}</span></td>
      <td>${theirs}</td>
      <td>${yours}</td>
      <td>${state(s.state)}${s.attempts > 0 && s.state === "pending" ? html` <span class="muted">retrying</span>` : ""}</td>
      <td>${marks(ctx, older)}${missedNow ? html`<span class="mark mark-missed" title="slots missed before the live occurrence">${missedNow} missed</span>` : ""}</td>
    </tr>`;
  })}
  </tbody>
</table>`}
<p class="muted">Marks: ✓ succeeded, ✗ failed, – cancelled; <em>late</em> when an occurrence started more than ${durationInWords(LATE_AFTER_MS)} after its slot; <em>missed</em> for slots that nothing ran for.</p>
<div class="pager">
  ${cursor ? html`<a href="${link(ctx, "/schedules", params)}">First page</a>` : ""}
  ${nextCursor ? html`<a href="${link(ctx, "/schedules", { ...params, cursor: nextCursor })}" id="next-page">Next page</a>` : ""}
</div>`,
  });
}

/** The next `count` runs: the one `nextRunOf` gives, then the rule's slots after it. A fixed-delay interval's later runs depend on when each ends: only the first. */
function nextRuns(rule: RuleView, row: { state: string; run_at: Date; slot_at: Date | null }, now: Date, count: number): Date[] {
  const first = nextRunOf(rule, row, now);
  if (!first) return [];
  const runs = [first];
  if (rule.kind === "every" && rule.fixedDelay) return runs;
  const math = toRule(rule);
  try {
    while (runs.length < count) runs.push(nextRunAt(math, runs.at(-1)!, runs.at(-1)!));
  } catch {
    // A rule cron-parser refuses: the first run is all there is to show.
  }
  return runs;
}

/** GET /schedule?key=: one schedule, its next five runs and last twenty occurrences. */
export async function schedulePage(ctx: RequestContext): Promise<string> {
  const key = ctx.query.get("key");
  if (!key) throw new HttpError(400, "key: give the schedule's key (?key=...)");
  const job = await getJob(ctx.db, { key }, { historyLimit: 0 });
  if (!job || !job.rule) throw new HttpError(404, `no schedule with key "${key}"`);
  const rule = job.rule;
  const zone = ruleZone(rule);
  const live = job.state === "pending" || job.state === "running";
  const runs = live ? nextRuns(rule, { state: job.state, run_at: job.runAt, slot_at: job.slotAt }, new Date(), 5) : [];
  const recent = (await recentOccurrences(ctx.db, [{ key, rule }], { perKey: 20, lateAfterMs: LATE_AFTER_MS })).get(key) ?? [];
  return page(ctx, {
    title: `Schedule ${key}`,
    here: "/schedules",
    body: html`
<h1>Schedule <code>${key}</code></h1>
<table class="fields">
  <tr><th>rule</th><td>${ruleCell(rule)}</td></tr>
  <tr><th>zone</th><td>${zone}</td></tr>
  <tr><th>missed runs</th><td>${rule.missed}</td></tr>
  <tr><th>task</th><td>${job.task} <span class="muted">(queue ${job.queue})</span></td></tr>
  <tr><th>${live ? "live occurrence" : "last occurrence"}</th><td><a href="${link(ctx, `/jobs/${job.id}`)}">job ${job.id}</a> ${state(job.state)}${live ? "" : html` <span class="muted">the schedule has ended (cancelled, or removed from the code's list)</span>`}</td></tr>
</table>
${live ? jobActionLinks(ctx, job.id, job.state) : ""}
<h2>Next runs</h2>
${runs.length === 0
  ? html`<p class="muted">None.</p>`
  : html`<table id="next-runs"><thead><tr><th>In ${zone}</th><th>In your zone (${ctx.zone})</th><th>UTC</th></tr></thead><tbody>
      ${runs.map((r) => {
        const [theirs, yours] = bothZones(ctx, r, zone);
        return html`<tr><td>${theirs}</td><td>${yours}</td><td>${r.toISOString()}</td></tr>`;
      })}</tbody></table>`}
<h2>Recent occurrences</h2>
${recent.length === 0
  ? html`<p class="muted">None finished yet (or pruned after their retention).</p>`
  : html`<table id="occurrences"><thead><tr><th>Job</th><th>State</th><th>Slot</th><th>Started</th><th>Finished</th><th class="num">Attempts</th><th>Marks</th></tr></thead><tbody>
      ${recent.map(
        (o) => html`<tr>
          <td><a href="${link(ctx, `/jobs/${o.id}`)}">${o.id}</a></td><td>${state(o.state)}</td>
          <td>${when(o.slotAt, ctx.zone)}</td><td>${when(o.startedAt, ctx.zone)}</td><td>${when(o.finishedAt, ctx.zone)}</td>
          <td class="num">${o.attempts}</td>
          <td>${o.lateMs !== null ? html`<span class="mark mark-late">late ${age(o.lateMs)}</span>` : ""}${o.missedBefore ? html`<span class="mark mark-missed">${o.missedBefore >= 100 ? "100+" : o.missedBefore} missed before</span>` : ""}</td>
        </tr>`,
      )}</tbody></table>`}`,
  });
}
