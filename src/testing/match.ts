/**
 * Deep partial matching of stored payloads, and the printing that makes a failed
 * assertion explain itself. No test framework is imported: asymmetric matchers
 * (`expect.any(String)`, `expect.stringContaining("x")` of vitest and jest) are
 * recognised by their `asymmetricMatch` method.
 */

/** What vitest's and jest's `expect.any(...)`, `expect.stringContaining(...)`, ... are. */
export interface AsymmetricMatcher {
  asymmetricMatch(actual: unknown): boolean;
}

/**
 * A pattern for a stored payload of type `T`: a deep partial of it. Objects match when
 * every key of the pattern matches (other keys are ignored); arrays match element by
 * element and must have the same length; a `RegExp` matches a string it tests; a
 * `Date` matches its ISO string (payloads are stored as JSON); an asymmetric matcher
 * decides for itself; anything else is compared with `Object.is`.
 */
export type PayloadPattern<T> =
  | AsymmetricMatcher
  | (unknown extends T
      ? unknown
      : T extends string
        ? string | RegExp
        : T extends Date
          ? Date | string
          : T extends readonly (infer E)[]
            ? readonly PayloadPattern<E>[]
            : T extends object
              ? { [K in keyof T]?: PayloadPattern<T[K]> }
              : T);

function isAsymmetric(value: unknown): value is AsymmetricMatcher {
  return typeof (value as Partial<AsymmetricMatcher> | null)?.asymmetricMatch === "function";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Why `actual` does not match `pattern`, as `path: expected ..., got ...`; undefined
 * when it matches.
 */
export function mismatch(pattern: unknown, actual: unknown, path: string): string | undefined {
  if (isAsymmetric(pattern)) {
    return pattern.asymmetricMatch(actual) ? undefined : `${path}: expected ${pretty(pattern)}, got ${pretty(actual)}`;
  }
  if (pattern instanceof RegExp) {
    return typeof actual === "string" && new RegExp(pattern.source, pattern.flags).test(actual)
      ? undefined
      : `${path}: expected a string matching ${pattern}, got ${pretty(actual)}`;
  }
  if (pattern instanceof Date) {
    const iso = Number.isNaN(pattern.getTime()) ? "Invalid Date" : pattern.toISOString();
    const same = actual instanceof Date ? actual.getTime() === pattern.getTime() : actual === iso;
    return same ? undefined : `${path}: expected ${iso}, got ${pretty(actual)}`;
  }
  if (Array.isArray(pattern)) {
    if (!Array.isArray(actual)) return `${path}: expected an array, got ${pretty(actual)}`;
    if (actual.length !== pattern.length) {
      return `${path}: expected ${pattern.length} element(s), got ${actual.length}: ${pretty(actual)}`;
    }
    for (let i = 0; i < pattern.length; i++) {
      const why = mismatch(pattern[i], actual[i], `${path}[${i}]`);
      if (why) return why;
    }
    return undefined;
  }
  if (isPlainObject(pattern)) {
    if (!isPlainObject(actual)) return `${path}: expected an object, got ${pretty(actual)}`;
    for (const key of Object.keys(pattern)) {
      const sub = `${path}.${key}`;
      if (pattern[key] === undefined) {
        // JSON has no undefined: a key given as undefined must be absent.
        if (key in actual) return `${sub}: expected no such key, got ${pretty(actual[key])}`;
        continue;
      }
      if (!(key in actual)) return `${sub}: missing (expected ${pretty(pattern[key])})`;
      const why = mismatch(pattern[key], actual[key], sub);
      if (why) return why;
    }
    return undefined;
  }
  return Object.is(pattern, actual) ? undefined : `${path}: expected ${pretty(pattern)}, got ${pretty(actual)}`;
}

/** Longest printed value; past it the text is cut, so one huge payload cannot drown the message. */
const PRETTY_MAX_CHARS = 2000;

/**
 * A value as a reader wants it in a failure message: JSON-like, indented, with
 * regexes, dates, asymmetric matchers and functions shown for what they are.
 */
export function pretty(value: unknown, indent = ""): string {
  const text = print(value, indent, new Set());
  return text.length > PRETTY_MAX_CHARS ? `${text.slice(0, PRETTY_MAX_CHARS)}… (${text.length} characters)` : text;
}

function print(value: unknown, indent: string, seen: Set<object>): string {
  if (value === undefined) return "undefined";
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean" || value === null) {
    return JSON.stringify(value) ?? String(value);
  }
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return `[function ${value.name || "anonymous"}]`;
  if (typeof value === "symbol") return value.toString();
  if (value instanceof RegExp) return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  if (isAsymmetric(value)) {
    const named = (value as { toAsymmetricMatcher?: () => string }).toAsymmetricMatcher;
    return typeof named === "function" ? named.call(value) : String(value);
  }
  const object = value as object;
  if (seen.has(object)) return "[cycle]";
  seen.add(object);
  const inner = `${indent}  `;
  let text: string;
  if (Array.isArray(object)) {
    text = object.length === 0 ? "[]" : `[\n${object.map((v) => inner + print(v, inner, seen)).join(",\n")}\n${indent}]`;
  } else {
    const entries = Object.entries(object);
    text =
      entries.length === 0
        ? "{}"
        : `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${print(v, inner, seen)}`).join(",\n")}\n${indent}}`;
  }
  seen.delete(object);
  return text;
}
