/**
 * Enqueues the demo's jobs. Run alone (`tsx examples/demo/produce.ts`, with
 * DATABASE_URL) it is the producer of docker-compose.yml; main.ts calls it in-process.
 */
import { pathToFileURL } from "node:url";
import pg from "pg";
import { createClient, createLogger, type Client, type Logger } from "../../src/index.js";
import { checkExpiredTrials, deliverWebhook, extractTodos, sendNotification, sendTodoEmail } from "./tasks.js";

/** Enqueues the demo jobs; returns the ids of the jobs that should end up finished. */
export async function enqueueDemoJobs(punctual: Client, logger: Logger): Promise<number[]> {
  const ids: number[] = [];

  // A batch of background jobs, one statement.
  const batch = await punctual.enqueueMany([1, 2, 3].map((taskId) => ({ task: extractTodos, payload: { taskId } })));
  ids.push(...batch.map((r) => r.id));
  logger.info({ jobs: batch.map((r) => r.id) }, "enqueued 3 extract-todos jobs in one statement");

  // A delayed notification, then the user edits it: same key, so it is replaced (debounce).
  const first = await punctual.enqueue(
    sendNotification,
    { userId: "42", message: "Your report is ready" },
    { key: "notify:42", delay: "2s" },
  );
  const edited = await punctual.enqueue(
    sendNotification,
    { userId: "42", message: "Your report is ready (with charts)" },
    { key: "notify:42", delay: "3s" },
  );
  ids.push(edited.id);
  logger.info({ id: first.id, outcome: edited.outcome, runAt: edited.runAt }, "notify:42 scheduled, then replaced");

  // Another one that the user cancels before it is due.
  await punctual.enqueue(sendNotification, { userId: "43", message: "Reminder" }, { key: "notify:43", delay: "1m" });
  logger.info({ cancelled: await punctual.cancel("notify:43") }, "notify:43 scheduled, then cancelled");

  // "Every day at 08:00 in each user's own time zone, email their to-do list": one
  // schedule per user, created in one statement.
  const users = [
    { id: 42, timeZone: "Europe/Paris" },
    { id: 43, timeZone: "America/New_York" },
    { id: 44, timeZone: "Asia/Tokyo" },
  ];
  const schedules = await punctual.scheduleMany(
    users.map((user) => ({
      key: `todo-email:${user.id}`,
      task: sendTodoEmail,
      payload: { userId: user.id },
      rule: { cron: "0 8 * * *", tz: user.timeZone },
    })),
  );
  for (const [i, s] of schedules.entries()) {
    logger.info({ key: s.key, tz: users[i]!.timeZone, nextRun: s.slotAt, outcome: s.outcome }, "daily to-do email scheduled");
  }

  // A job at an exact instant, and one that fails once before it succeeds.
  const trials = await punctual.enqueue(checkExpiredTrials, {}, { runAt: new Date(Date.now() + 1500) });
  const webhook = await punctual.enqueue(deliverWebhook, { url: "https://example.com/hooks/order-paid" });
  ids.push(trials.id, webhook.id);
  return ids;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
  const logger = createLogger("producer");
  await enqueueDemoJobs(createClient({ executor: pool }), logger);
  await pool.end();
}
