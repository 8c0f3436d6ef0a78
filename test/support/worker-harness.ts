import { pino } from "pino";
import { afterAll, afterEach, beforeAll } from "vitest";
import { createClient, createWorker, type Client, type Worker, type WorkerOptions } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

/**
 * The shared set-up of worker tests: a database for the file, a client, and workers
 * that are stopped (and the table emptied) after each test.
 */
export function workerHarness(defaults: Partial<WorkerOptions> = {}) {
  let db: TestDatabase;
  let punctual: Client;
  const workers: Worker[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    punctual = createClient({ executor: db.pool });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop({ timeoutMs: 500 })));
    await db.pool.query("truncate punctual.jobs");
  });
  afterAll(() => db.drop());
  return {
    get db() {
      return db;
    },
    get punctual() {
      return punctual;
    },
    /** Creates and starts a worker on the test database (silent logs). */
    startWorker(options: Partial<WorkerOptions> & Pick<WorkerOptions, "tasks">): Worker {
      const worker = createWorker({ connectionString: db.url, logger: pino({ level: "silent" }), ...defaults, ...options });
      workers.push(worker);
      void worker.start();
      return worker;
    },
  };
}
