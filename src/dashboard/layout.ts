/**
 * The frame of every page: navigation, the viewer's zone, the notice an action left,
 * and the stylesheet and script (allowed by hash in the Content-Security-Policy).
 */
import { SCRIPT, STYLE } from "./assets.js";
import { link, type RequestContext } from "./context.js";
import { html, raw, type Html } from "./html.js";

const NAV = [
  ["/", "Overview"],
  ["/jobs", "Jobs"],
  ["/schedules", "Schedules"],
  ["/workers", "Workers"],
] as const;

/** A whole page. `here`: the navigation entry to mark. */
export function page(ctx: RequestContext, { title, here, body }: { title: string; here?: string; body: Html }): string {
  const signedInByForm = ctx.identity.kind === "token" && ctx.identity.via === "cookie";
  return html`<!doctype html>
<html lang="en" data-base="${ctx.base || "/"}" data-viewer-zone="${ctx.zone}" data-zone-source="${ctx.zoneSource}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title} · Punctual</title>
<style>${raw(STYLE)}</style>
<script>${raw(SCRIPT)}</script>
</head>
<body>
<header>
  <span class="brand">Punctual</span>
  <nav>${NAV.map(([path, name]) => html`<a href="${link(ctx, path)}" class="${here === path ? "here" : ""}">${name}</a>`)}</nav>
  <span class="side">
    ${ctx.readOnly ? html`<span title="actions are off">read-only</span>` : ""}
    <span title="times are shown in this zone (from your browser; ?tz= to choose)">times: ${ctx.zone}</span>
    ${signedInByForm
      ? html`<form method="post" action="${link(ctx, "/logout")}"><input type="hidden" name="csrf" value="${ctx.csrf}"><button>Sign out</button></form>`
      : ""}
  </span>
</header>
<main>
${ctx.notice ? html`<div class="notice${ctx.notice.bad ? " bad" : ""}" role="status">${ctx.notice.text}</div>` : ""}
${body}
</main>
</body>
</html>
`.text;
}

/** A page that says what went wrong (no stack, no internals): 400, 403, 404, 500, ... */
export function errorPage(ctx: RequestContext, status: number, message: string): string {
  const heading = STATUS_TITLES[status] ?? "Error";
  return page(ctx, {
    title: heading,
    body: html`<h1>${heading}</h1><p class="notice bad">${message}</p><p><a href="${link(ctx, "/")}">Overview</a></p>`,
  });
}

const STATUS_TITLES: Record<number, string> = {
  400: "Bad request",
  401: "Sign in",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  413: "Too large",
  500: "The dashboard failed",
  503: "The database did not answer",
};
