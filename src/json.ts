import { z } from "zod";
import { ValidationError } from "./errors.js";

/** Largest payload Punctual stores, in bytes of JSON text. */
export const PAYLOAD_MAX_BYTES = 1024 * 1024;

/**
 * Characters PostgreSQL cannot store: NUL (`text` and `jsonb` refuse it) and an
 * unpaired UTF-16 surrogate (JSON carries it as `\ud800`, which `jsonb` refuses; sent
 * as `text`, the driver's UTF-8 encoding would silently turn it into U+FFFD). With the
 * `u` flag a surrogate pair is one code point, so the class matches only unpaired halves.
 */
const UNSTORABLE = /[\u0000\ud800-\udfff]/u;

/**
 * Why PostgreSQL cannot store this string as given, or undefined when it can. One
 * regex test, so checking every string of a payload costs little next to serialising it.
 */
export function unstorableText(text: string): string | undefined {
  const found = UNSTORABLE.exec(text);
  if (!found) return undefined;
  const char = found[0];
  return char === "\u0000"
    ? "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    : `contains an unpaired UTF-16 surrogate (${escapeChar(char)}), which PostgreSQL cannot store`;
}

/**
 * A zod string that PostgreSQL can store as given (see `unstorableText`). The check
 * comes first and stops the rest, so an unprintable character is the one thing named.
 * `typeError` replaces zod's message for a value that is not a string.
 */
export function storableString(typeError?: string) {
  return z.string(typeError === undefined ? undefined : { error: typeError }).refine((text) => !UNSTORABLE.test(text), {
    error: (issue) => unstorableText(issue.input as string),
    abort: true,
  });
}

/** Replaces NUL and lone surrogates with `\uXXXX`, so a path that holds them prints. */
function escapeText(text: string): string {
  return text.replace(new RegExp(UNSTORABLE.source, "gu"), escapeChar);
}

function escapeChar(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * Serialises a payload, refusing what JSON cannot carry instead of letting
 * `JSON.stringify` drop or mangle it silently: functions, symbols, BigInt, cycles,
 * NaN/Infinity, `undefined` inside arrays, and class instances other than those with
 * a `toJSON` (Date). Refused too, as PostgreSQL would refuse them with an error that
 * names no field: NUL characters and unpaired UTF-16 surrogates in strings and keys.
 * Oversized payloads are refused. Errors name the path; a key that holds an
 * unstorable character appears in it escaped (`payload.a\u0000b`).
 */
export function toJsonText(value: unknown, field = "payload"): string {
  return jsonText(value, field).text;
}

/**
 * `toJsonText`, and whether `value` is plain JSON already: nothing in it that the JSON
 * text writes differently (a `toJSON`, such as a Date's; a property that is
 * `undefined`; an array hole), so `JSON.parse(text)` gives back an equal value.
 */
export function jsonText(value: unknown, field = "payload"): { text: string; plain: boolean } {
  const plain = assertJsonSafe(value, [field], new Set());
  const text = JSON.stringify(value);
  if (text === undefined) throw new ValidationError(field, "is not a JSON value");
  // UTF-8 takes at most 3 bytes per UTF-16 code unit: a text this short cannot be over
  // the limit, and is not scanned to count its bytes.
  if (text.length * 3 > PAYLOAD_MAX_BYTES) {
    const bytes = Buffer.byteLength(text);
    if (bytes > PAYLOAD_MAX_BYTES) {
      throw new ValidationError(field, `is ${bytes} bytes of JSON; the limit is ${PAYLOAD_MAX_BYTES}`);
    }
  }
  return { text, plain };
}

/**
 * Walks a payload as JSON.stringify will. `path` is the way down, from the field name:
 * kept as a stack of keys and joined only for an error, as every value of every payload
 * passes through here and almost none is refused.
 */
function assertJsonSafe(value: unknown, path: string[], ancestors: Set<object>): boolean {
  switch (typeof value) {
    case "string": {
      const problem = unstorableText(value);
      if (problem) throw refuse(path, problem);
      return true;
    }
    case "boolean":
      return true;
    case "number":
      if (!Number.isFinite(value)) throw refuse(path, `${value} is not representable in JSON`);
      return true;
    case "bigint":
      throw refuse(path, "a BigInt is not representable in JSON; pass a string or number");
    case "function":
    case "symbol":
      throw refuse(path, `a ${typeof value} is not representable in JSON`);
    case "undefined":
      throw refuse(path, "undefined is not representable in JSON");
  }
  if (value === null) return true;
  const object = value as object;
  if (ancestors.has(object)) throw refuse(path, "contains a cycle");
  const toJSON = (object as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") {
    // What JSON.stringify will write in its place (a Date: its ISO string) is checked
    // like any value, so a custom toJSON cannot slip a NUL past the check.
    const last = path[path.length - 1]!;
    ancestors.add(object);
    assertJsonSafe(toJSON.call(object, last.slice(last.lastIndexOf(".") + 1)), path, ancestors);
    ancestors.delete(object);
    return false;
  }
  ancestors.add(object);
  let plain = true;
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) {
      if (!(i in object)) {
        plain = false; // a hole, skipped as forEach skips it (JSON writes null)
        continue;
      }
      path.push(String(i));
      if (!assertJsonSafe(object[i], path, ancestors)) plain = false;
      path.pop();
    }
  } else {
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      throw refuse(path, `a ${proto?.constructor?.name ?? "class"} instance is not plain JSON`);
    }
    const record = object as Record<string, unknown>;
    for (const k of Object.keys(record)) {
      const v = record[k];
      // Object properties that are undefined are simply absent in JSON, as users expect.
      if (v === undefined) {
        plain = false;
        continue;
      }
      const problem = unstorableText(k);
      if (problem) throw new ValidationError(`${path.join(".")}.${escapeText(k)}`, `the key ${problem}`);
      path.push(k);
      if (!assertJsonSafe(v, path, ancestors)) plain = false;
      path.pop();
    }
  }
  ancestors.delete(object);
  return plain;
}

function refuse(path: string[], message: string): ValidationError {
  return new ValidationError(path.join("."), message);
}
