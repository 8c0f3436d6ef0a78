/**
 * The demo's tasks: the kind of work real apps schedule. `punctual worker --tasks
 * examples/demo/tasks.ts` runs them (docker-compose.yml does).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { defineTask } from "../../src/index.js";

/** "Send this notification in 10 minutes, and if the user changes it, replace it." */
export const sendNotification = defineTask({
  name: "send-notification",
  payload: z.object({ userId: z.string(), message: z.string().min(1) }),
  run: ({ userId, message }, { logger }) => {
    logger.info({ userId, message }, "notification sent");
  },
});

/** "Extract to-dos from this finished task in the background." */
export const extractTodos = defineTask({
  name: "extract-todos",
  payload: z.object({ taskId: z.number().int() }),
  run: async ({ taskId }, { logger, signal }) => {
    await sleep(200 + (taskId % 3) * 100, undefined, { signal }); // pretend to call a model
    logger.info({ taskId, todos: (taskId % 3) + 1 }, "to-dos extracted");
  },
});

/** "Every hour, re-check expired trials": declared as a schedule in main.ts (every 5 s there). */
export const checkExpiredTrials = defineTask({
  name: "check-expired-trials",
  payload: z.object({}),
  run: (_payload, { logger }) => {
    logger.info({ expired: 0 }, "trials checked");
  },
});

/** "Every day at 08:00 in each user's own time zone, email their to-do list." */
export const sendTodoEmail = defineTask({
  name: "send-todo-email",
  payload: z.object({ userId: z.number().int() }),
  run: ({ userId }, { job, logger }) => {
    logger.info({ userId, slot: job.slot, late: job.late }, "to-do email sent");
  },
});

/** A webhook whose first delivery fails: shows a retry with backoff. */
export const deliverWebhook = defineTask({
  name: "deliver-webhook",
  payload: z.object({ url: z.url() }),
  maxAttempts: 3,
  backoff: { baseMs: 500 },
  run: ({ url }, { job, logger }) => {
    if (job.attempt === 1) throw new Error(`${url} answered 503`);
    logger.info({ url, attempt: job.attempt }, "webhook delivered");
  },
});

export const demoTasks = [sendNotification, extractTodos, checkExpiredTrials, sendTodoEmail, deliverWebhook];

/** The demo's declared periodic jobs: every worker reconciles them at start. */
export const demoSchedules = [
  { key: "check-expired-trials", task: checkExpiredTrials, payload: {}, rule: { every: "5s" } },
];
