/**
 * `npm start`: a database (DATABASE_URL, else an embedded PostgreSQL kept in
 * .punctual-dev/), migrations, a worker with the demo tasks, and some jobs to watch.
 * Ctrl-C stops the worker gracefully, then the database. `--exit-when-done` stops by
 * itself once the demo's jobs have finished.
 */
import pg from "pg";
import { createClient, createLogger, createWorker, migrate } from "../../src/index.js";
import { startDevDatabase } from "../../dev/database.js";
import { enqueueDemoJobs } from "./produce.js";
import { demoSchedules, demoTasks } from "./tasks.js";

const exitWhenDone = process.argv.includes("--exit-when-done");
const logger = createLogger("demo");

const database = await startDevDatabase({
  dataDir: ".punctual-dev/pg",
  persistent: true,
  containers: false,
  log: (message) => logger.warn(message),
});
logger.info({ source: database.source }, "database ready");
await migrate(database.url);

const pool = new pg.Pool({ connectionString: database.url, max: 6 });
const worker = createWorker({ pool, tasks: demoTasks, schedules: demoSchedules, logger });
await worker.start();

const punctual = createClient({ executor: pool });
// Listen before enqueueing: a job can finish before enqueueDemoJobs returns.
const finishedJobs = new Set<number>();
let onFinished = () => {};
const done = (job: { id: number }) => {
  finishedJobs.add(job.id);
  onFinished();
};
worker.on("job:succeeded", done);
worker.on("job:failed", done);
const finishedIds = await enqueueDemoJobs(punctual, logger);
const finished = new Promise<void>((resolve) => {
  onFinished = () => finishedIds.every((id) => finishedJobs.has(id)) && resolve();
  onFinished();
});

await finished;
const { rows } = await pool.query(
  `select id, task, key, state, attempts, run_at, last_error from punctual.jobs
   where id = any($1) or state = 'pending' order by id`,
  [finishedIds],
);
logger.info("all demo jobs finished; the table says:");
console.table(rows);

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  await worker.stop();
  await pool.end();
  await database.stop();
  logger.info("bye");
}

if (exitWhenDone) {
  await shutdown();
} else {
  logger.info("worker still running: enqueue more with psql (see README), Ctrl-C to stop");
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}
