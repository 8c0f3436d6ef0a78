import { describe, expect, it } from "vitest";
import { jsonText, toJsonText, PAYLOAD_MAX_BYTES } from "../../src/json.js";
import { expectValidationError } from "../support/validation.js";

describe("jsonText", () => {
  it("tells plain JSON (its text parses back to an equal value) from values the text writes differently", () => {
    for (const plain of [1, "x", null, true, [1, [2, { a: "b" }]], { a: { b: [null, 2.5] } }, Object.assign(Object.create(null), { a: 1 })]) {
      const { text, plain: isPlain } = jsonText(plain);
      expect(isPlain).toBe(true);
      expect(JSON.parse(text)).toEqual(plain);
    }
    // eslint-disable-next-line no-sparse-arrays
    for (const changed of [{ at: new Date(0) }, { a: undefined }, [1, , 2], [{ deep: { at: new Date(0) } }]]) {
      expect(jsonText(changed).plain).toBe(false);
    }
  });
});

describe("toJsonText", () => {
  it("serialises plain JSON values, dropping undefined object properties like JSON does", () => {
    expect(toJsonText({ a: 1, b: [true, null, "x"], c: undefined, d: { e: 2.5 } })).toBe(
      '{"a":1,"b":[true,null,"x"],"d":{"e":2.5}}',
    );
    expect(toJsonText({ at: new Date("2030-01-01T00:00:00Z") })).toBe('{"at":"2030-01-01T00:00:00.000Z"}');
    expect(toJsonText(Object.assign(Object.create(null), { a: 1 }))).toBe('{"a":1}');
  });

  it.each([
    ["BigInt", { n: 1n }, "payload.n"],
    ["function", { f() {} }, "payload.f"],
    ["symbol", { s: Symbol("x") }, "payload.s"],
    ["NaN", [1, Number.NaN], "payload.1"],
    ["-Infinity", { deep: { x: -Infinity } }, "payload.deep.x"],
    ["undefined in an array", [1, undefined], "payload.1"],
    ["top-level undefined", undefined, "payload"],
    ["a Set", { s: new Set([1]) }, "payload.s"],
  ])("refuses %s, naming the path", (_what, value, field) => {
    expectValidationError(() => toJsonText(value), field);
  });

  it.each([
    ["a NUL in a string", { note: "a\u0000b" }, "payload.note", /NUL character \(\\u0000\)/],
    ["a NUL in a nested array", { a: [{ b: ["ok", "\u0000"] }] }, "payload.a.0.b.1", /NUL character/],
    ["a NUL as the whole payload", "\u0000", "payload", /NUL character/],
    ["a NUL in an object key", { "a\u0000b": 1 }, "payload.a\\u0000b", /the key contains a NUL character/],
    ["an unpaired high surrogate", { s: "x\ud800" }, "payload.s", /unpaired UTF-16 surrogate \(\\ud800\)/],
    ["an unpaired low surrogate", { s: "\udc00x" }, "payload.s", /unpaired UTF-16 surrogate \(\\udc00\)/],
    ["two high surrogates", { s: "\ud83d\ud83d\ude00" }, "payload.s", /unpaired UTF-16 surrogate/],
    ["an unpaired surrogate in a key", { "\ud800": 1 }, "payload.\\ud800", /the key contains an unpaired UTF-16 surrogate/],
    ["a NUL that a custom toJSON writes", { v: { toJSON: () => "a\u0000" } }, "payload.v", /NUL character/],
    ["a NUL nested in what a custom toJSON returns", { v: { toJSON: () => ({ deep: ["\u0000"] }) } }, "payload.v.deep.0", /NUL character/],
  ])("refuses %s, which PostgreSQL cannot store, naming the path", (_what, value, field, message) => {
    expectValidationError(() => toJsonText(value), field, message, /PostgreSQL cannot store/);
  });

  it("checks what a toJSON returns: a Date becomes its ISO string, an invalid Date null", () => {
    expect(toJsonText({ at: new Date("2030-01-01T08:00:00Z"), bad: new Date("nonsense") })).toBe(
      '{"at":"2030-01-01T08:00:00.000Z","bad":null}',
    );
  });

  it("accepts paired surrogates (emoji) and escaped-looking text", () => {
    expect(toJsonText({ "😀": "a😀b", t: "\\u0000" })).toBe('{"😀":"a😀b","t":"\\\\u0000"}');
  });

  it("refuses cycles but accepts the same object twice side by side", () => {
    const shared = { x: 1 };
    expect(toJsonText({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
    const cyclic: { self?: unknown } = {};
    cyclic.self = { back: cyclic };
    expect(() => toJsonText(cyclic)).toThrow(/payload\.self\.back: contains a cycle/);
  });

  it("refuses payloads over the size limit, counting bytes not characters", () => {
    const justFits = "x".repeat(PAYLOAD_MAX_BYTES - 2); // the quotes make up the rest
    expect(toJsonText(justFits)).toHaveLength(PAYLOAD_MAX_BYTES);
    expect(() => toJsonText("é".repeat(PAYLOAD_MAX_BYTES / 2))).toThrow(/bytes of JSON; the limit is/);
  });
});
