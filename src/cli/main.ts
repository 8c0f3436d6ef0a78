#!/usr/bin/env node
/**
 * The `punctual` command. Argument parsing and OS signals live here and nowhere else.
 *
 *   punctual migrate
 *   punctual worker --tasks ./dist/tasks.js [--concurrency 20] [--queues default,emails] [--migrate]
 *
 * The database is `DATABASE_URL` (or `--database-url`).
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";
import { createLogger } from "../logger.js";
import { migrate } from "../migrate.js";
import type { Duration } from "../schedule/duration.js";
import type { AnyTask } from "../tasks.js";
import { createWorker } from "../worker/worker.js";

const USAGE = `usage:
  punctual migrate [--database-url URL]
  punctual worker --tasks MODULE [--concurrency N] [--queues a,b] [--poll-interval MS]
                  [--lease MS] [--retention DURATION|off] [--poll-only]
                  [--shutdown-timeout MS] [--migrate] [--database-url URL]

--poll-only: no LISTEN connection (for PgBouncer in transaction mode).
SIGTERM/SIGINT: stop claiming, let running jobs finish within --shutdown-timeout
(default 10000), hand the rest back to pending, exit 0. A second signal exits at once.

MODULE exports tasks made with defineTask (named exports, or a default array).
The database is DATABASE_URL unless --database-url is given.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "database-url": { type: "string" },
      tasks: { type: "string" },
      concurrency: { type: "string" },
      queues: { type: "string" },
      "poll-interval": { type: "string" },
      "shutdown-timeout": { type: "string" },
      lease: { type: "string" },
      retention: { type: "string" },
      "poll-only": { type: "boolean" },
      migrate: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const databaseUrl = values["database-url"] ?? process.env.DATABASE_URL;
  if (!databaseUrl) {
    console.error("punctual: set DATABASE_URL or pass --database-url");
    return 2;
  }
  const logger = createLogger();
  if (command === "migrate") {
    await migrate(databaseUrl);
    logger.info("migrations applied");
    return 0;
  }
  if (command !== "worker") {
    console.error(`punctual: unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  if (!values.tasks) {
    console.error("punctual worker: --tasks MODULE is required");
    return 2;
  }
  const tasks = await loadTasks(values.tasks);
  const number = (flag: string, value: string | undefined) =>
    value === undefined ? undefined : z.coerce.number({ error: `--${flag} must be a number` }).int().parse(value);
  if (values.migrate) await migrate(databaseUrl);
  const worker = createWorker({
    connectionString: databaseUrl,
    tasks,
    logger,
    concurrency: number("concurrency", values.concurrency),
    queues: values.queues?.split(",").map((q) => q.trim()),
    pollIntervalMs: number("poll-interval", values["poll-interval"]),
    leaseMs: number("lease", values.lease),
    listen: !values["poll-only"],
    retention: values.retention === "off" ? false : (values.retention as Duration | undefined),
  });
  const timeoutMs = number("shutdown-timeout", values["shutdown-timeout"]) ?? 10_000;
  await worker.start();
  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        logger.warn({ signal }, "second signal: exiting without waiting");
        process.exit(1);
      }
      signalled = true;
      logger.info({ signal, timeoutMs }, "draining: no new jobs; waiting for running ones");
      void worker.stop({ timeoutMs }).then(resolve);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  return 0;
}

/** Imports a module and collects the tasks it exports. */
async function loadTasks(modulePath: string): Promise<AnyTask[]> {
  const mod = (await import(pathToFileURL(path.resolve(modulePath)).href)) as Record<string, unknown>;
  const candidates = Object.values(mod).flatMap((value) => (Array.isArray(value) ? value : [value]));
  const tasks = [...new Set(candidates.filter(isTask))];
  if (tasks.length === 0) throw new Error(`${modulePath} exports no tasks (made with defineTask)`);
  return tasks;
}

function isTask(value: unknown): value is AnyTask {
  const task = value as AnyTask | null;
  return Boolean(task) && typeof task!.name === "string" && task!.payload instanceof z.ZodType && typeof task!.run === "function";
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? `punctual: ${error.message}` : error);
    process.exit(1);
  },
);
