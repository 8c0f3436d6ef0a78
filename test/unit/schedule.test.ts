import { describe, expect, it } from "vitest";
import { isMissed, nextOccurrence, nextRunAt } from "../../src/schedule/next.js";
import { MISSED_ALL_LIMIT, parseRule, toRule, type Rule } from "../../src/schedule/rule.js";
import { expectValidationError } from "../support/validation.js";

const at = (iso: string) => new Date(iso);
const rule = (input: unknown): Rule => toRule(parseRule(input));

/** The first n slots strictly after `from`, as ISO strings. */
function slots(r: Rule, from: string, n: number): string[] {
  const out: string[] = [];
  let cursor = at(from);
  let anchor: Date | null = null;
  for (let i = 0; i < n; i++) {
    cursor = nextRunAt(r, cursor, anchor);
    anchor = cursor;
    out.push(cursor.toISOString());
  }
  return out;
}

describe("cron rules", () => {
  it("5 fields: the next slot comes from the rule, not from when the run finished", () => {
    expect(nextRunAt(rule({ cron: "0 8 * * *" }), at("2026-01-05T08:00:02Z")).toISOString()).toBe("2026-01-06T08:00:00.000Z");
    expect(nextRunAt(rule({ cron: "0 8 * * *" }), at("2026-01-05T07:59:59.999Z")).toISOString()).toBe("2026-01-05T08:00:00.000Z");
  });

  it("6 fields: seconds first", () => {
    expect(slots(rule({ cron: "*/15 * * * * *" }), "2026-01-05T10:00:07Z", 3)).toEqual([
      "2026-01-05T10:00:15.000Z",
      "2026-01-05T10:00:30.000Z",
      "2026-01-05T10:00:45.000Z",
    ]);
  });

  it("every Monday at 10:00", () => {
    // 2026-01-05 is a Monday
    expect(slots(rule({ cron: "0 10 * * MON" }), "2026-01-05T10:00:00Z", 2)).toEqual([
      "2026-01-12T10:00:00.000Z",
      "2026-01-19T10:00:00.000Z",
    ]);
  });

  it("08:00 in the user's own zone, winter and summer", () => {
    const paris = rule({ cron: "0 8 * * *", tz: "Europe/Paris" });
    expect(nextRunAt(paris, at("2026-01-15T12:00:00Z")).toISOString()).toBe("2026-01-16T07:00:00.000Z");
    expect(nextRunAt(paris, at("2026-07-15T12:00:00Z")).toISOString()).toBe("2026-07-16T06:00:00.000Z");
    const newYork = rule({ cron: "0 8 * * *", tz: "America/New_York" });
    expect(nextRunAt(newYork, at("2026-01-15T14:00:00Z")).toISOString()).toBe("2026-01-16T13:00:00.000Z");
    const tokyo = rule({ cron: "0 8 * * *", tz: "Asia/Tokyo" });
    expect(nextRunAt(tokyo, at("2026-01-15T00:00:00Z")).toISOString()).toBe("2026-01-15T23:00:00.000Z");
  });
});

describe("daylight saving time", () => {
  describe("spring forward: a slot that does not exist runs once, when the clocks jump", () => {
    it("America/New_York (2026-03-08, 02:00 -> 03:00)", () => {
      expect(slots(rule({ cron: "30 2 * * *", tz: "America/New_York" }), "2026-03-07T12:00:00Z", 3)).toEqual([
        "2026-03-08T07:00:00.000Z", // 03:00 EDT, the first valid instant after 02:30 EST would have been
        "2026-03-09T06:30:00.000Z", // 02:30 EDT
        "2026-03-10T06:30:00.000Z",
      ]);
    });

    it("Europe/Paris (2026-03-29, 02:00 -> 03:00)", () => {
      expect(slots(rule({ cron: "30 2 * * *", tz: "Europe/Paris" }), "2026-03-28T12:00:00Z", 2)).toEqual([
        "2026-03-29T01:00:00.000Z", // 03:00 CEST
        "2026-03-30T00:30:00.000Z", // 02:30 CEST
      ]);
    });

    it("every 30 minutes: 02:00 and 02:30 collapse into one run at 03:00", () => {
      expect(slots(rule({ cron: "*/30 * * * *", tz: "America/New_York" }), "2026-03-08T05:00:00Z", 5)).toEqual([
        "2026-03-08T05:30:00.000Z", // 00:30 EST
        "2026-03-08T06:00:00.000Z", // 01:00 EST
        "2026-03-08T06:30:00.000Z", // 01:30 EST
        "2026-03-08T07:00:00.000Z", // 03:00 EDT (02:00, 02:30 and 03:00 run once)
        "2026-03-08T07:30:00.000Z", // 03:30 EDT
      ]);
      expect(slots(rule({ cron: "*/30 * * * *", tz: "Europe/Paris" }), "2026-03-29T00:00:00Z", 4)).toEqual([
        "2026-03-29T00:30:00.000Z", // 01:30 CET
        "2026-03-29T01:00:00.000Z", // 03:00 CEST
        "2026-03-29T01:30:00.000Z", // 03:30 CEST
        "2026-03-29T02:00:00.000Z",
      ]);
    });
  });

  describe("fall back: a wall-clock time that happens twice runs once", () => {
    it("America/New_York (2026-11-01, 02:00 -> 01:00)", () => {
      expect(slots(rule({ cron: "30 1 * * *", tz: "America/New_York" }), "2026-10-31T12:00:00Z", 2)).toEqual([
        "2026-11-01T05:30:00.000Z", // 01:30 EDT, and not again at 01:30 EST
        "2026-11-02T06:30:00.000Z",
      ]);
    });

    it("Europe/Paris (2026-10-25, 03:00 -> 02:00)", () => {
      expect(slots(rule({ cron: "30 2 * * *", tz: "Europe/Paris" }), "2026-10-24T12:00:00Z", 2)).toEqual([
        "2026-10-25T00:30:00.000Z", // 02:30 CEST, and not again at 02:30 CET
        "2026-10-26T01:30:00.000Z",
      ]);
    });

    it("every 30 minutes: the repeated hour's slots run once each", () => {
      expect(slots(rule({ cron: "*/30 * * * *", tz: "America/New_York" }), "2026-11-01T04:00:00Z", 5)).toEqual([
        "2026-11-01T04:30:00.000Z", // 00:30 EDT
        "2026-11-01T05:00:00.000Z", // 01:00 EDT
        "2026-11-01T05:30:00.000Z", // 01:30 EDT
        "2026-11-01T07:00:00.000Z", // 02:00 EST (01:00 and 01:30 EST are repeats)
        "2026-11-01T07:30:00.000Z",
      ]);
      expect(slots(rule({ cron: "*/30 * * * *", tz: "Europe/Paris" }), "2026-10-24T23:00:00Z", 5)).toEqual([
        "2026-10-24T23:30:00.000Z", // 01:30 CEST
        "2026-10-25T00:00:00.000Z", // 02:00 CEST
        "2026-10-25T00:30:00.000Z", // 02:30 CEST
        "2026-10-25T02:00:00.000Z", // 03:00 CET (02:00 and 02:30 CET are repeats)
        "2026-10-25T02:30:00.000Z",
      ]);
    });

    it("from inside the repeated hour, the next slot is after it", () => {
      // 01:15 EST, the second 01:15 of the night
      expect(nextRunAt(rule({ cron: "*/30 * * * *", tz: "America/New_York" }), at("2026-11-01T06:15:00Z")).toISOString()).toBe(
        "2026-11-01T07:00:00.000Z",
      );
    });
  });
});

describe("interval rules", () => {
  it("fixed rate: slots stay on the grid, however late a run finished", () => {
    const every10m = rule({ every: "10m" });
    expect(nextRunAt(every10m, at("2026-01-05T10:00:00Z"), at("2026-01-05T10:00:00Z")).toISOString()).toBe("2026-01-05T10:10:00.000Z");
    expect(nextRunAt(every10m, at("2026-01-05T10:03:17Z"), at("2026-01-05T10:00:00Z")).toISOString()).toBe("2026-01-05T10:10:00.000Z");
    expect(nextRunAt(every10m, at("2026-01-05T10:10:00Z"), at("2026-01-05T10:00:00Z")).toISOString()).toBe("2026-01-05T10:20:00.000Z");
  });

  it("fixed delay: counted from when the run finished", () => {
    const r = rule({ every: 3_600_000, fixedDelay: true });
    expect(nextOccurrence(r, "once", at("2026-01-05T10:00:00Z"), at("2026-01-05T10:07:00Z")).toISOString()).toBe("2026-01-05T11:07:00.000Z");
  });

  it("is not affected by DST: every hour is 3,600 s", () => {
    expect(slots(rule({ every: "1h" }), "2026-03-08T05:00:00Z", 3).at(-1)).toBe("2026-03-08T08:00:00.000Z");
  });
});

describe("missed runs", () => {
  const hourly = rule({ cron: "0 * * * *" });
  const slot = at("2026-01-05T10:00:00Z");

  it("on time, every policy gives the next slot", () => {
    for (const policy of ["once", "skip", "all"] as const) {
      expect(nextOccurrence(hourly, policy, slot, at("2026-01-05T10:00:02Z")).toISOString()).toBe("2026-01-05T11:00:00.000Z");
    }
    expect(isMissed(hourly, slot, at("2026-01-05T10:59:59Z"))).toBe(false);
  });

  it("after an outage: the 10:00 run is missed once 11:00 has come", () => {
    expect(isMissed(hourly, slot, at("2026-01-05T11:00:00Z"))).toBe(true);
    expect(isMissed(rule({ every: "1h", fixedDelay: true }), slot, at("2026-01-09T00:00:00Z"))).toBe(false);
  });

  it("once and skip resume at the first slot after now", () => {
    const now = at("2026-01-05T13:30:00Z");
    expect(nextOccurrence(hourly, "once", slot, now).toISOString()).toBe("2026-01-05T14:00:00.000Z");
    expect(nextOccurrence(hourly, "skip", slot, now).toISOString()).toBe("2026-01-05T14:00:00.000Z");
  });

  it("all runs each missed slot in turn", () => {
    const now = at("2026-01-05T13:30:00Z");
    expect(nextOccurrence(hourly, "all", slot, now).toISOString()).toBe("2026-01-05T11:00:00.000Z");
    expect(nextOccurrence(hourly, "all", at("2026-01-05T13:00:00Z"), now).toISOString()).toBe("2026-01-05T14:00:00.000Z");
  });

  it(`all is bounded: at most the ${MISSED_ALL_LIMIT} most recent missed slots run`, () => {
    const now = at("2026-01-10T00:00:00Z"); // 110 hourly slots after 10:00 on the 5th
    const next = nextOccurrence(hourly, "all", slot, now);
    expect(next.toISOString()).toBe(new Date(now.getTime() - (MISSED_ALL_LIMIT - 1) * 3_600_000).toISOString());
    const everySecond = rule({ every: "1s" });
    const start = at("2026-01-05T00:00:00Z");
    const later = at("2026-01-06T00:00:00Z");
    expect(nextOccurrence(everySecond, "all", start, later).getTime()).toBe(later.getTime() - (MISSED_ALL_LIMIT - 1) * 1000);
  });
});

describe("invalid rules get clear errors", () => {
  it.each([
    [{ cron: "61 * * * *" }, "rule.cron", /not a valid cron expression/],
    [{ cron: "* * *" }, "rule.cron", /3 fields/],
    [{ cron: "* * * * * * *" }, "rule.cron", /7 fields/],
    [{ cron: "0 8 * * *", tz: "Mars/Olympus_Mons" }, "rule.tz", /not an IANA time zone/],
    [{ every: 0 }, "rule.every", /at least 100 ms/],
    [{ every: -5 }, "rule.every", /at least 100 ms/],
    [{ every: "often" }, "rule.every", /"10s"/],
    [{ every: "400d" }, "rule.every", /at most 366 days/],
    [{ every: "1h", missed: "sometimes" }, "rule.missed", /once|skip|all/],
    [{ cron: "0 8 * * *", every: "1h" }, "rule", /either cron .* or every/],
    [{}, "rule", /either cron/],
    [{ cron: "0 8 * * *", timezone: "UTC" }, "rule.timezone", /Unrecognized key/],
  ])("%j", (input, field, message) => {
    expectValidationError(() => parseRule(input), field, message);
  });
});
