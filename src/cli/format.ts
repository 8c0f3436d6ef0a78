/**
 * Plain-text output for the operator commands: aligned tables and short times. The
 * `--json` output does not come through here.
 */

/** Renders rows under a header, columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** An instant in UTC to the second: `2026-03-09T07:00:00Z`; `-` for none. */
export function utc(instant: Date | null | undefined): string {
  return instant ? instant.toISOString().replace(/\.\d{3}Z$/, "Z") : "-";
}

/** A duration for people: `850ms`, `42s`, `3m12s`, `5h03m`, `2d04h`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}

/** The first line of a text, cut to `max` characters with an ellipsis. */
export function short(text: string | null | undefined, max: number): string {
  if (!text) return "";
  const first = text.split("\n", 1)[0]!;
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** Text with control characters shown as escapes, so a value cannot move the cursor or clear the terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
