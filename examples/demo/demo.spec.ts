/**
 * How an app tests the code around Punctual, shown on the demo's producer and tasks
 * with `punctual/testing` (here imported from the sources). In an app this is a test
 * file of its own, with the app's pool; here the tests are wrapped in a function so
 * that the project's suite runs them on its per-file database
 * (test/integration/testing-helpers.test.ts calls it).
 */
import type pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createClient, upcomingSlots } from "../../src/index.js";
import { drain, expectEnqueued, listEnqueued, runJob } from "../../src/testing/index.js";
import { enqueueDemoJobs } from "./produce.js";
import { checkExpiredTrials, deliverWebhook, extractTodos, sendNotification, sendTodoEmail } from "./tasks.js";

const silent = pino({ level: "silent" });

/** The demo's tests, on the database of `pool()` (migrated, with an empty `punctual.jobs`). */
export function demoTests(pool: () => pg.Pool): void {
  describe("the demo, tested with punctual/testing", () => {
    it("enqueueDemoJobs: a batch, a debounced notification, a cancelled one, three daily schedules", async () => {
      await enqueueDemoJobs(createClient({ executor: pool() }), silent);

      await expectEnqueued(pool(), extractTodos, undefined, { count: 3 });
      // Replaced (same key): one job, with the edited message and the later delay.
      await expectEnqueued(
        pool(),
        sendNotification,
        { userId: "42", message: "Your report is ready (with charts)" },
        { key: "notify:42", delay: { max: "3s" }, count: 1 },
      );
      // Cancelled: not pending any more, but in the table.
      await expectEnqueued(pool(), sendNotification, { userId: "43" }, { count: 0 });
      await expectEnqueued(pool(), sendNotification, { userId: "43" }, { state: "cancelled", key: "notify:43" });
      for (const [userId, tz] of [[42, "Europe/Paris"], [43, "America/New_York"], [44, "Asia/Tokyo"]] as const) {
        await expectEnqueued(pool(), sendTodoEmail, { userId }, { key: `todo-email:${userId}`, count: 1 });
        const [schedule] = await listEnqueued(pool(), { key: `todo-email:${userId}` });
        expect(schedule).toMatchObject({ cron: "0 8 * * *", tz });
      }
    });

    it("deliverWebhook fails its first attempt and succeeds on the next", async () => {
      const url = "https://example.com/hooks/order-paid";
      await expect(runJob(deliverWebhook, { url })).rejects.toThrow(`${url} answered 503`);
      await expect(runJob(deliverWebhook, { url }, { job: { attempt: 2 } })).resolves.toBeUndefined();
    });

    it("drain runs the one-off jobs due within the next few seconds, the webhook's retry included", async () => {
      await enqueueDemoJobs(createClient({ executor: pool() }), silent);
      const { succeeded, failed } = await drain({
        pool: pool(),
        tasks: [extractTodos, sendNotification, checkExpiredTrials, deliverWebhook],
        asOf: new Date(Date.now() + 5_000),
        concurrency: 3,
      });
      expect(succeeded.map((r) => r.task).sort()).toEqual([
        "check-expired-trials",
        "deliver-webhook",
        "extract-todos",
        "extract-todos",
        "extract-todos",
        "send-notification",
      ]);
      expect(failed).toEqual([expect.objectContaining({ task: "deliver-webhook", attempt: 1, outcome: "retried" })]);
      expect(succeeded.find((r) => r.task === "send-notification")?.payload).toEqual({
        userId: "42",
        message: "Your report is ready (with charts)",
      });
      // Nothing of those tasks is left to run; the daily emails wait for 08:00.
      await expectEnqueued(pool(), sendNotification, undefined, { count: 0 });
      await expectEnqueued(pool(), sendTodoEmail, undefined, { count: 3 });
    });

    it("each user's to-do email runs at 08:00 in the user's zone, then waits for the next day's", async () => {
      await enqueueDemoJobs(createClient({ executor: pool() }), silent);
      const zones = { 42: "Europe/Paris", 43: "America/New_York", 44: "Asia/Tokyo" } as const;
      const now = new Date();
      const first = (tz: string) => upcomingSlots({ cron: "0 8 * * *", tz }, now, 1)[0]!;
      // The last of the three first slots: each schedule's second slot comes a day after its first, so later.
      const asOf = new Date(Math.max(...Object.values(zones).map((tz) => first(tz).getTime())));
      const { succeeded } = await drain({ pool: pool(), tasks: [sendTodoEmail], asOf });

      expect(succeeded).toHaveLength(3);
      for (const run of succeeded) {
        const tz = zones[(run.payload as { userId: 42 | 43 | 44 }).userId];
        expect(run.slot).toEqual(first(tz));
        expect(run.slot!.toLocaleTimeString("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit" })).toBe("08:00");
        const [next] = await expectEnqueued(pool(), sendTodoEmail, undefined, { key: run.key!, count: 1 });
        expect(next!.runAt).toEqual(upcomingSlots({ cron: "0 8 * * *", tz }, run.slot!, 1)[0]);
      }
    });
  });
}
