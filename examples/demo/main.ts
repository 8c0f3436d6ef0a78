/**
 * `npm start`: a database (DATABASE_URL, else an embedded PostgreSQL kept in
 * .punctual-dev/), migrations, a worker with the demo tasks, and some jobs to watch.
 * Ctrl-C stops the worker gracefully, then the database. `--exit-when-done` stops by
 * itself once the demo's jobs have finished.
 */
import pg from "pg";
import { createClient, createLogger, createWorker, migrate, type Worker } from "../../src/index.js";
import { startDevDatabase, type DevDatabase } from "../../dev/database.js";
import { enqueueDemoJobs } from "./produce.js";
import { demoSchedules, demoTasks } from "./tasks.js";

const exitWhenDone = process.argv.includes("--exit-when-done");
const logger = createLogger("demo");

let database: DevDatabase;
try {
  database = await startDevDatabase({
    dataDir: ".punctual-dev/pg",
    persistent: true,
    containers: false,
    log: (message) => logger.warn(message),
  });
} catch (error) {
  // One paragraph that says what to do, not a stack.
  console.error(`\n${(error as Error).message}\n`);
  process.exit(1);
}
logger.info({ source: database.source }, "database ready");

// From here on Ctrl-C (SIGINT, sent to the whole terminal process group) and SIGTERM
// drain the worker, then stop the database. The embedded server runs in a session of
// its own, so the terminal's signal does not stop it under the worker. A repeated
// signal (tsx relays the terminal's SIGINT too) does not cut the drain short.
let stopping = false;
let worker: Worker | undefined;
let pool: pg.Pool | undefined;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  await worker?.stop();
  await pool?.end();
  await database.stop();
  logger.info("database stopped; bye");
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    void shutdown().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}

async function runDemo() {
  await migrate(database.url);
  pool = new pg.Pool({ connectionString: database.url, max: 6 });
  worker = createWorker({ pool, tasks: demoTasks, schedules: demoSchedules, logger });
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
  if (!stopping) {
    const { rows } = await pool!.query(
      `select id, task, key, state, attempts, run_at, last_error from punctual.jobs
       where id = any($1) or state = 'pending' order by id`,
      [finishedIds],
    );
    logger.info("all demo jobs finished; the table says:");
    console.table(rows);
    if (exitWhenDone) {
      await shutdown();
    } else {
      logger.info("worker still running: enqueue more with psql (see README), Ctrl-C to stop");
    }
  }
}

runDemo().catch(async (error) => {
  // A Ctrl-C in the middle of the demo ends the pool under it: that is no error.
  if (stopping) return;
  logger.error({ err: error }, "demo failed");
  await shutdown().catch(() => {});
  process.exit(1);
});
