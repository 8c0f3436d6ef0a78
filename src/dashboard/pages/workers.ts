/**
 * Workers, as the table knows them: each `locked_by` among running rows, with the jobs
 * it holds, how long they have run, and when its leases expire (an expired lease is a
 * worker that died or stalled; another worker's rescue takes the job back).
 */
import { listWorkers } from "../../ops/workers.js";
import { link, type RequestContext } from "../context.js";
import { age, when } from "../format.js";
import { html } from "../html.js";
import { page } from "../layout.js";

/** GET /workers. */
export async function workersPage(ctx: RequestContext): Promise<string> {
  const { at, workers, capped } = await listWorkers(ctx.db);
  const since = (d: Date | null) => (d ? age(at.getTime() - d.getTime()) : "-");
  return page(ctx, {
    title: "Workers",
    here: "/workers",
    body: html`
<h1>Workers</h1>
<p class="muted">Workers holding running jobs (a worker with nothing claimed does not show: the table knows workers only by their jobs).
${capped ? " More running jobs than were read: counts are lower bounds." : ""}</p>
${workers.length === 0
  ? html`<p class="muted" id="no-workers">No worker holds a job right now.</p>`
  : html`
<table id="workers">
  <thead><tr><th>Worker</th><th class="num">Jobs held</th><th class="num">Running</th><th class="num">In its buffer</th><th>Longest running</th><th>Newest start</th><th>Next lease expiry</th><th class="num">Expired leases</th></tr></thead>
  <tbody>
  ${workers.map((w) => {
    const expiresIn = w.leaseExpiresFirstAt.getTime() - at.getTime();
    return html`<tr data-worker="${w.workerId}">
      <td><code>${w.workerId || "(none)"}</code></td>
      <td class="num">${w.held}</td>
      <td class="num">${w.started}</td>
      <td class="num">${w.held - w.started}</td>
      <td>${since(w.oldestStartedAt)}</td>
      <td>${w.newestStartedAt ? html`${since(w.newestStartedAt)} ago` : html`<span class="muted">-</span>`}</td>
      <td title="${w.leaseExpiresFirstAt.toISOString()}">${expiresIn >= 0 ? html`in ${age(expiresIn)}` : html`<span class="state state-failed">expired ${age(-expiresIn)} ago</span>`} <span class="muted">(${when(w.leaseExpiresFirstAt, ctx.zone)})</span></td>
      <td class="num">${w.expired}</td>
    </tr>`;
  })}
  </tbody>
</table>`}
<p><a href="${link(ctx, "/jobs", { state: "running" })}">Running jobs</a></p>`,
  });
}
