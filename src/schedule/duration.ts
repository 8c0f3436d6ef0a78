import { z } from "zod";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * A duration: milliseconds as a number, or a string such as `"500ms"`, `"10s"`,
 * `"5m"`, `"2h"`, `"1d"`. Parses to milliseconds; anything else is refused: a string
 * in another format with the formats it takes, anything else (NaN, Infinity, a
 * boolean, ...) with what a duration is.
 */
export const durationSchema = z.union(
  [
    z.number(), // zod refuses NaN and ±Infinity
    z
      .string()
      .trim()
      .regex(/^\d+(\.\d+)?\s*(ms|s|m|h|d)$/, 'must look like "500ms", "10s", "5m", "2h" or "1d"'),
  ],
  // Without it, a value neither branch takes is just "Invalid input".
  { error: 'must be a finite number of milliseconds or a string like "10s"' },
).transform((value) => {
  if (typeof value === "number") return value;
  const [, amount, unit] = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(value)!;
  return Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
});

/** A duration as `durationSchema` accepts it. */
export type Duration = z.input<typeof durationSchema>;
