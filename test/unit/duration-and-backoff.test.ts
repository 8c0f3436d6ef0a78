import { describe, expect, it } from "vitest";
import { durationSchema } from "../../src/schedule/duration.js";
import { retryDelayMs } from "../../src/worker/backoff.js";

describe("durations", () => {
  it.each([
    [250, 250],
    ["500ms", 500],
    ["10s", 10_000],
    ["1.5s", 1500],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    [" 3 s ", 3000],
  ])("%j is %d ms", (input, ms) => {
    expect(durationSchema.parse(input)).toBe(ms);
  });

  it.each([["soon"], ["10"], ["-5s"], ["5 minutes"], [Number.POSITIVE_INFINITY], [Number.NaN]])("refuses %j", (input) => {
    expect(durationSchema.safeParse(input).success).toBe(false);
  });

  it.each([[Number.NaN], [Number.NEGATIVE_INFINITY], [true], [null], [{ ms: 5 }]])("says what it expects for %j", (input) => {
    const parsed = durationSchema.safeParse(input);
    expect(parsed.error?.issues[0]?.message).toBe('must be a finite number of milliseconds or a string like "10s"');
  });
});

describe("retry backoff", () => {
  it("doubles from the base and stays under the cap", () => {
    const noJitter = () => 1;
    expect([1, 2, 3, 4].map((a) => retryDelayMs(a, { baseMs: 100 }, noJitter))).toEqual([100, 200, 400, 800]);
    expect(retryDelayMs(30, { baseMs: 1000, maxMs: 60_000 }, noJitter)).toBe(60_000);
  });

  it("jitters each delay into [half, full]", () => {
    expect(retryDelayMs(3, { baseMs: 1000 }, () => 0)).toBe(2000);
    expect(retryDelayMs(3, { baseMs: 1000 }, () => 0.5)).toBe(3000);
    const delays = Array.from({ length: 200 }, () => retryDelayMs(2, { baseMs: 1000 }));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2000);
    expect(new Set(delays).size).toBeGreaterThan(1);
  });
});
