/**
 * The one way the dashboard builds HTML: the `html` tagged template, which escapes
 * every interpolated value unless it is itself `html` output. A payload, key, error or
 * worker id holding `<script>` therefore shows as text; only the templates written in
 * this folder produce markup.
 */

/** Markup made by `html` (or `raw`): interpolated as-is into another template. */
export class Html {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text;
  }
}

/** An interpolated value: text (escaped), markup, a list of either, or nothing. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe for an element's content and for a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  if (value === null || value === undefined || value === false) return "";
  return escapeHtml(String(value));
}

/**
 * A template whose interpolations are escaped (attributes must be quoted with `"`);
 * `null`, `undefined` and `false` render as nothing, arrays as their items.
 *
 * @example
 * html`<td title="${job.key}">${job.lastError}</td>`
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Markup taken as it is: only for constants of this folder (the stylesheet, the script). */
export function raw(text: string): Html {
  return new Html(text);
}
