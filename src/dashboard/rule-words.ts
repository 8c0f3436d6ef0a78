/**
 * A schedule's rule in words, for people: `0 8 * * 1-5` is "at 08:00, Monday to
 * Friday". Covers the shapes schedules usually take; anything else is shown as the
 * expression itself (the dashboard always shows the expression next to the words).
 */
import type { RuleView } from "../ops/rule-view.js";

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAY_NAMES: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const MONTH_NAMES: Record<string, number> = Object.fromEntries(MONTHS.map((m, i) => [m.slice(0, 3).toLowerCase(), i + 1]));

const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** The rule in words: "every 10 minutes", "at 08:00 every day", "at 09:30, Monday to Friday". */
export function ruleInWords(rule: RuleView): string {
  if (rule.kind === "every") return `every ${durationInWords(rule.everyMs)}${rule.fixedDelay ? " after each run ends" : ""}`;
  return cronInWords(rule.cron) ?? `cron ${rule.cron}`;
}

/** A duration in words: "90 seconds" is "1 minute 30 seconds", "1500 ms" is "1.5 seconds". */
export function durationInWords(ms: number): string {
  if (ms < 1000) return plural(ms, "millisecond");
  if (ms % 1000 !== 0 && ms < 60_000) return `${ms / 1000} seconds`;
  const units: [number, string][] = [[86_400_000, "day"], [3_600_000, "hour"], [60_000, "minute"], [1000, "second"]];
  const parts: string[] = [];
  let rest = ms;
  for (const [size, name] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(plural(n, name));
    rest -= n * size;
  }
  return parts.join(" ") || plural(ms, "millisecond");
}

function plural(n: number, unit: string): string {
  return n === 1 ? `1 ${unit}` : `${n} ${unit}s`;
}

/** A cron expression in words, or null for a shape this does not describe. */
export function cronInWords(expression: string): string | null {
  const expanded = MACROS[expression.trim().toLowerCase()] ?? expression.trim();
  const fields = expanded.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return null;
  const [second, minute, hour, dom, month, dow] = fields.length === 6 ? fields : ["0", ...fields];
  const time = timeInWords(second!, minute!, hour!);
  const days = daysInWords(dom!, month!, dow!);
  if (time === null || days === null) return null;
  return days ? `${time}, ${days}` : time;
}

/** A field as a list of numbers (`1,3,5`, `1-5`, names), or null when it is `*`, a step, or not understood. */
function list(field: string, names: Record<string, number> = {}): number[] | null {
  const values: number[] = [];
  for (const part of field.split(",")) {
    const range = /^([a-z0-9]+)(?:-([a-z0-9]+))?$/i.exec(part);
    if (!range) return null;
    const read = (text: string) => (/^\d+$/.test(text) ? Number(text) : names[text.toLowerCase()]);
    const from = read(range[1]!);
    const to = range[2] === undefined ? from : read(range[2]);
    if (from === undefined || to === undefined || to < from || to - from > 60) return null;
    for (let v = from; v <= to; v++) values.push(v);
  }
  return values;
}

/** `*\/n` as n, else null. */
function step(field: string): number | null {
  const match = /^\*\/(\d+)$/.exec(field);
  return match ? Number(match[1]) : null;
}

const two = (n: number) => String(n).padStart(2, "0");

function timeInWords(second: string, minute: string, hour: string): string | null {
  const seconds = list(second);
  if (hour === "*" && minute === "*") {
    if (second === "*") return "every second";
    const s = step(second);
    if (s) return `every ${plural(s, "second")}`;
    if (seconds?.length === 1) return seconds[0] === 0 ? "every minute" : `every minute, at second ${seconds[0]}`;
    return null;
  }
  if (!seconds || seconds.length !== 1) return null;
  const atSecond = seconds[0] === 0 ? "" : `:${two(seconds[0]!)}`;
  if (hour === "*") {
    const m = step(minute);
    if (m) return `every ${plural(m, "minute")}`;
    const minutes = list(minute);
    if (!minutes) return null;
    return minutes.length === 1 && minutes[0] === 0 && !atSecond ? "every hour, on the hour" : `every hour at minute ${minutes.join(", ")}`;
  }
  const minutes = list(minute);
  const hStep = step(hour);
  if (hStep && minutes?.length === 1) return `every ${plural(hStep, "hour")} at minute ${minutes[0]}`;
  const hours = list(hour);
  if (!hours || !minutes || hours.length * minutes.length > 6) {
    if (hours && minute === "*") return `every minute from ${two(hours[0]!)}:00 to ${two(hours.at(-1)!)}:59`;
    return null;
  }
  const times = hours.flatMap((h) => minutes.map((m) => `${two(h)}:${two(m)}${atSecond}`));
  return `at ${joinWords(times)}`;
}

function daysInWords(dom: string, month: string, dow: string): string | null {
  const parts: string[] = [];
  if (dom === "*" && dow === "*") parts.push("every day");
  else if (dom !== "*" && dom !== "?") {
    const days = list(dom);
    if (!days) return null;
    parts.push(`on day ${joinWords(days.map(String))} of the month`);
    if (dow !== "*" && dow !== "?") return null;
  } else {
    const days = list(dow.replace(/\b7\b/g, "0"), DAY_NAMES);
    if (!days) return null;
    const sorted = [...new Set(days)].sort((a, b) => a - b);
    const consecutive = sorted.length > 2 && sorted.every((d, i) => i === 0 || d === sorted[i - 1]! + 1);
    parts.push(consecutive ? `${DAYS[sorted[0]!]} to ${DAYS[sorted.at(-1)!]}` : `on ${joinWords(sorted.map((d) => DAYS[d]!))}`);
  }
  if (month !== "*") {
    const months = list(month, MONTH_NAMES);
    if (!months || months.some((m) => m < 1 || m > 12)) return null;
    parts.push(`in ${joinWords(months.map((m) => MONTHS[m - 1]!))}`);
  }
  return parts.join(" ");
}

function joinWords(items: string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}
