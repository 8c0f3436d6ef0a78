import { ValidationError } from "./errors.js";

/** Largest payload Punctual stores, in bytes of JSON text. */
export const PAYLOAD_MAX_BYTES = 1024 * 1024;

/**
 * Serialises a payload, refusing what JSON cannot carry instead of letting
 * `JSON.stringify` drop or mangle it silently: functions, symbols, BigInt, cycles,
 * NaN/Infinity, `undefined` inside arrays, and class instances other than those with
 * a `toJSON` (Date). Oversized payloads are refused too. Errors name the path.
 */
export function toJsonText(value: unknown, field = "payload"): string {
  assertJsonSafe(value, field, new Set());
  const text = JSON.stringify(value);
  if (text === undefined) throw new ValidationError(field, "is not a JSON value");
  const bytes = Buffer.byteLength(text);
  if (bytes > PAYLOAD_MAX_BYTES) {
    throw new ValidationError(field, `is ${bytes} bytes of JSON; the limit is ${PAYLOAD_MAX_BYTES}`);
  }
  return text;
}

function assertJsonSafe(value: unknown, path: string, ancestors: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw new ValidationError(path, `${value} is not representable in JSON`);
      return;
    case "bigint":
      throw new ValidationError(path, "a BigInt is not representable in JSON; pass a string or number");
    case "function":
    case "symbol":
      throw new ValidationError(path, `a ${typeof value} is not representable in JSON`);
    case "undefined":
      throw new ValidationError(path, "undefined is not representable in JSON");
  }
  if (value === null) return;
  const object = value as object;
  if (ancestors.has(object)) throw new ValidationError(path, "contains a cycle");
  if (typeof (object as { toJSON?: unknown }).toJSON === "function") return;
  ancestors.add(object);
  if (Array.isArray(object)) {
    object.forEach((item, i) => assertJsonSafe(item, `${path}.${i}`, ancestors));
  } else {
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      throw new ValidationError(path, `a ${proto?.constructor?.name ?? "class"} instance is not plain JSON`);
    }
    for (const [k, v] of Object.entries(object)) {
      // Object properties that are undefined are simply absent in JSON, as users expect.
      if (v !== undefined) assertJsonSafe(v, `${path}.${k}`, ancestors);
    }
  }
  ancestors.delete(object);
}
