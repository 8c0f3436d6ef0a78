/**
 * The overview: counts by state, the last hour's finished and failed jobs per five
 * minutes, and each queue's backlog (due, oldest due, scheduled, running, failures).
 */
import { jobStats, type JobStats } from "../../ops/stats.js";
import { jobThroughput, type Throughput } from "../../ops/throughput.js";
import { jobState } from "../../schema.js";
import { link, type RequestContext } from "../context.js";
import { age, count, local, when } from "../format.js";
import { html, type Html } from "../html.js";
import { page } from "../layout.js";

/** GET /: the overview. */
export async function overviewPage(ctx: RequestContext): Promise<string> {
  const [stats, throughput] = await Promise.all([jobStats(ctx.db), jobThroughput(ctx.db)]);
  return page(ctx, {
    title: "Overview",
    here: "/",
    body: html`
<h1>Overview</h1>
<div class="cards" id="states">
  ${jobState.enumValues.map(
    (s) => html`<a class="card" href="${link(ctx, "/jobs", { state: s, order: s === "pending" ? "due" : undefined })}" data-state="${s}">
      <div class="n">${count(stats.states[s])}</div><div class="label">${s}</div></a>`,
  )}
  <div class="card"><div class="n">${count(stats.failedLastHour)}</div><div class="label">failed in the last hour</div></div>
</div>
<p class="muted">Counts read up to ${stats.countLimit.toLocaleString("en-US")} rows each through the state indexes; "+" means at least. At ${local(stats.at, ctx.zone)}.</p>
<h2>The last hour</h2>
${chart(ctx, throughput)}
<h2>Queues</h2>
${queueTable(ctx, stats)}`,
  });
}

/** Bars per bucket: finished (blue) and, over them, failed (red). SVG attributes only: no inline style. */
function chart(ctx: RequestContext, t: Throughput): Html {
  const width = 760;
  const height = 170;
  const top = 10;
  const bottom = 22;
  const left = 40;
  const plot = height - top - bottom;
  const max = Math.max(1, ...t.buckets.map((b) => b.finished));
  const slot = (width - left - 10) / t.buckets.length;
  const y = (n: number) => top + plot - (n / max) * plot;
  const bars = t.buckets.map((b, i) => {
    const x = left + i * slot + 2;
    const w = slot - 4;
    const label = `${local(b.start, ctx.zone).slice(11, 16)}–${local(b.end, ctx.zone).slice(11, 16)}: ${b.finished} finished, ${b.failed} failed${b.complete ? "" : " (at least)"}`;
    return html`<g><title>${label}</title>
      <rect class="finished${b.complete ? "" : " partial"}" x="${x.toFixed(1)}" y="${y(b.finished).toFixed(1)}" width="${w.toFixed(1)}" height="${(top + plot - y(b.finished)).toFixed(1)}"></rect>
      <rect class="failed" x="${x.toFixed(1)}" y="${y(b.failed).toFixed(1)}" width="${w.toFixed(1)}" height="${(top + plot - y(b.failed)).toFixed(1)}"></rect>
      ${i % 3 === 2 || i === t.buckets.length - 1 ? html`<text x="${(x + w / 2).toFixed(1)}" y="${height - 6}" text-anchor="middle">${local(b.end, ctx.zone).slice(11, 16)}</text>` : ""}
    </g>`;
  });
  return html`
<div class="legend"><span><span class="sw sw-finished"></span>finished</span><span><span class="sw sw-failed"></span>failed</span>
  <span class="muted">per ${Math.round(t.bucketMs / 60_000)} minutes, the newest ending now</span></div>
<svg class="chart" id="throughput" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="jobs finished and failed per 5 minutes over the last hour">
  <text x="4" y="${top + 8}">${max}</text><text x="4" y="${top + plot}">0</text>
  <line x1="${left}" y1="${top + plot}" x2="${width - 10}" y2="${top + plot}" stroke="#dfe3ea"></line>
  ${bars}
</svg>
<p id="last-hour">In the last hour: <strong>${count(t.finished)}</strong> finished, <strong>${count(t.failed)}</strong> failed.
${t.finished.capped || t.failed.capped ? html`<span class="muted">(Read up to the newest ${t.finished.count.toLocaleString("en-US")} entries: paler bars are lower bounds.)</span>` : ""}</p>`;
}

function queueTable(ctx: RequestContext, stats: JobStats): Html {
  if (stats.queues.length === 0) return html`<p class="muted">No pending, running or recently failed jobs in any queue.</p>`;
  return html`
<table id="queues">
  <thead><tr><th>Queue</th><th class="num">Due now</th><th>Oldest due</th><th class="num">Scheduled</th><th class="num">Running</th><th class="num">Failed (1 h)</th></tr></thead>
  <tbody>
  ${stats.queues.map(
    (q) => html`<tr data-queue="${q.queue}">
      <td><a href="${link(ctx, "/jobs", { queue: q.queue, state: "pending", order: "due" })}">${q.queue}</a></td>
      <td class="num">${count(q.due)}</td>
      <td>${q.oldestDueAt ? html`${age(q.oldestDueAgeMs ?? 0)} <span class="muted">(${when(q.oldestDueAt, ctx.zone)})</span>` : html`<span class="muted">-</span>`}</td>
      <td class="num">${count(q.scheduled)}</td>
      <td class="num">${count(q.running)}</td>
      <td class="num">${q.failedLastHour.count ? html`<a href="${link(ctx, "/jobs", { queue: q.queue, state: "failed" })}">${count(q.failedLastHour)}</a>` : "0"}</td>
    </tr>`,
  )}
  </tbody>
</table>`;
}
