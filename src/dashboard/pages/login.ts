/**
 * Signing in with the token: a form that, given the right token, sets an HttpOnly,
 * SameSite=Strict cookie (an HMAC of the token, not the token), so a browser need not
 * send `Authorization: Bearer`. Basic authentication needs no page: the browser asks.
 */
import { link, redirect, type RequestContext } from "../context.js";
import { html } from "../html.js";
import { page } from "../layout.js";
import { SESSION_COOKIE, SESSION_MAX_AGE_S } from "../security.js";

/** The sign-in page (status 401 when it stands in for a page that needs signing in). */
export function loginPage(ctx: RequestContext, { next, failed = false }: { next: string; failed?: boolean }): string {
  const { token, username } = ctx.guard.auth ?? {};
  return page(ctx, {
    title: "Sign in",
    body: html`
<h1>Sign in</h1>
${failed ? html`<p class="notice bad" id="login-failed">That token is not the one this dashboard was started with.</p>` : ""}
${token
  ? html`<form method="post" class="confirm" action="${link(ctx, "/login")}">
  <p>This dashboard needs its access token.</p>
  <label>Token <input type="password" name="token" id="token" autocomplete="current-password" required></label>
  <input type="hidden" name="next" value="${next}">
  <input type="hidden" name="csrf" value="${ctx.csrf}">
  <button type="submit" id="sign-in">Sign in</button>
</form>`
  : ""}
${username ? html`<p class="muted">Or sign in with the dashboard's user name and password (basic authentication): reload the page to be asked.</p>` : ""}`,
  });
}

/** Where to go after signing in: a path inside the dashboard, never another site. */
export function safeNext(ctx: RequestContext, next: string | undefined): string {
  const home = `${ctx.base}/`;
  if (!next || !next.startsWith(`${ctx.base}/`) || next.startsWith("//") || next.includes("\\")) return home;
  return next;
}

/** POST /login: the right token sets the cookie and goes on; a wrong one shows the form again (401). */
export function loginPost(ctx: RequestContext, form: Record<string, string>): string | null {
  const next = safeNext(ctx, form.next);
  if (!ctx.guard.tokenMatches(form.token ?? "")) return loginPage(ctx, { next, failed: true });
  redirect(ctx.res, next, { "Set-Cookie": sessionCookie(ctx, ctx.guard.sessionValue(), SESSION_MAX_AGE_S) });
  return null;
}

/** POST /logout: the cookie is cleared. */
export function logoutPost(ctx: RequestContext): void {
  redirect(ctx.res, `${ctx.base}/login`, { "Set-Cookie": sessionCookie(ctx, "", 0) });
}

function sessionCookie(ctx: RequestContext, value: string, maxAge: number): string {
  const secure = (ctx.req.socket as { encrypted?: boolean }).encrypted || ctx.req.headers["x-forwarded-proto"] === "https";
  return `${SESSION_COOKIE}=${value}; Path=${ctx.base || "/"}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}
