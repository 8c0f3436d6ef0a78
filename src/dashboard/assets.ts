/**
 * The dashboard's stylesheet and its one script, inlined in every page and allowed by
 * their hashes in the Content-Security-Policy: no other style or script can run, even
 * if a value escaped the templates. No build step, nothing downloaded.
 */
import { createHash } from "node:crypto";

/** The name of the cookie that carries the viewer's time zone. */
export const ZONE_COOKIE = "punctual_tz";

/** The stylesheet: system fonts, a table layout, state colours. */
export const STYLE = `
:root { --fg: #1d2330; --muted: #647089; --line: #dfe3ea; --bg: #f6f7f9; --card: #fff; --accent: #2f5bd3;
  --ok: #1f8a4c; --bad: #c0392b; --warn: #b7791f; --info: #2f5bd3; --idle: #7a8499; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem; background: #1d2330; color: #fff; }
header .brand { font-weight: 700; letter-spacing: .02em; }
header nav a { color: #c9d2e3; text-decoration: none; margin-right: 1rem; }
header nav a.here, header nav a:hover { color: #fff; }
header .side { margin-left: auto; display: flex; gap: .8rem; align-items: center; color: #c9d2e3; }
header form { margin: 0; }
header button { background: none; border: 1px solid #4a5470; color: #c9d2e3; border-radius: 4px; padding: .15rem .5rem; cursor: pointer; }
main { padding: 1.2rem 1.5rem 3rem; max-width: 1400px; }
h1 { font-size: 1.35rem; margin: 0 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.6rem 0 .6rem; }
a { color: var(--accent); }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .7rem 1rem; min-width: 9rem; text-decoration: none; color: inherit; }
.card .n { font-size: 1.5rem; font-weight: 600; }
.card .label { color: var(--muted); }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.err { color: var(--bad); max-width: 28rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fields th { width: 11rem; background: none; color: var(--muted); font-weight: 500; }
.state { display: inline-block; padding: 0 .45rem; border-radius: 9px; font-size: .85em; color: #fff; background: var(--idle); }
.state-succeeded { background: var(--ok); } .state-failed { background: var(--bad); } .state-running { background: var(--info); }
.state-pending { background: var(--warn); } .state-cancelled { background: var(--idle); }
.muted { color: var(--muted); }
.mark { display: inline-block; min-width: 1.3em; text-align: center; border-radius: 3px; margin-right: 2px; color: #fff; font-size: .8em; padding: 0 .2em; }
.mark-succeeded { background: var(--ok); } .mark-failed { background: var(--bad); } .mark-cancelled { background: var(--idle); }
.mark-late { background: var(--warn); } .mark-missed { background: #6b4bb5; }
pre { background: var(--card); border: 1px solid var(--line); border-radius: 4px; padding: .7rem; overflow: auto; max-height: 30rem; white-space: pre-wrap; word-break: break-word; }
pre.error { color: var(--bad); }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid #c3c9d4; border-radius: 4px; background: #fff; }
button, .button { font: inherit; padding: .3rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
.button.secondary, button.secondary { background: #fff; color: var(--accent); }
.button.danger, button.danger { border-color: var(--bad); background: var(--bad); color: #fff; }
.actions { display: flex; gap: .5rem; flex-wrap: wrap; margin: .6rem 0 1rem; }
.notice { padding: .6rem .9rem; border-radius: 5px; margin-bottom: 1rem; background: #e8f4ec; border: 1px solid #b9dcc5; }
.notice.bad { background: #fbeceb; border-color: #efc2bd; }
.confirm { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 1rem 1.2rem; max-width: 48rem; }
.pager { margin-top: .8rem; display: flex; gap: 1rem; }
svg.chart { background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
svg.chart .finished { fill: #8fb0ea; } svg.chart .failed { fill: var(--bad); } svg.chart .partial { fill-opacity: .45; }
svg.chart text { font-size: 10px; fill: var(--muted); }
.legend span { margin-right: 1rem; } .legend .sw { display: inline-block; width: .8em; height: .8em; margin-right: .3em; vertical-align: -.05em; }
.sw-finished { background: #8fb0ea; } .sw-failed { background: var(--bad); }
`;

/**
 * The viewer's time zone: the browser's (`Intl`), kept in a cookie so that the server
 * renders times in it. When the page was rendered in another zone (first visit, or the
 * machine's zone changed), it reloads once; a `?tz=` in the address wins over both.
 */
export const SCRIPT = `
(function () {
  var root = document.documentElement;
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || root.getAttribute("data-zone-source") === "query") return;
  var path = root.getAttribute("data-base") || "/";
  document.cookie = "${ZONE_COOKIE}=" + encodeURIComponent(zone) + "; path=" + path + "; max-age=31536000; SameSite=Strict";
  if (root.getAttribute("data-viewer-zone") === zone) return;
  try {
    if (sessionStorage.getItem("${ZONE_COOKIE}_reloaded") === zone) return;
    sessionStorage.setItem("${ZONE_COOKIE}_reloaded", zone);
  } catch (e) { return; }
  if (document.cookie.indexOf("${ZONE_COOKIE}=") >= 0) location.reload();
})();
`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/**
 * The policy every response carries: nothing loads from elsewhere, no script but the
 * one above, no style but the one above, forms post only here, no framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");
