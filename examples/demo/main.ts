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
import { demoTasks } from "./tasks.js";

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
const worker = createWorker({ pool, tasks: demoTasks, logger, pollIntervalMs: 100 });
await worker.start();

const punctual = createClient({ executor: pool });
const ids = new Set(await enqueueDemoJobs(punctual, logger));
const finished = new Promise<void>((resolve) => {
  const done = (job: { id: number }) => {
    ids.delete(job.id);
    if (ids.size === 0) resolve();
  };
  worker.on("job:succeeded", done);
  worker.on("job:failed", done);
});

await finished;
const { rows } = await pool.query(
  `select id, task, key, state, attempts, last_error from punctual.jobs order by id desc limit 7`,
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
