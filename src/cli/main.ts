#!/usr/bin/env node
/**
 * The `punctual` command. Argument parsing and OS signals live here and nowhere else.
 *
 *   punctual migrate
 *   punctual worker --tasks ./dist/tasks.js [--concurrency 20] [--queues default,emails] [--migrate]
 *   punctual dashboard [--port 4000] [--host 127.0.0.1] [--read-only] [--token T | --basic-auth user:pass]
 *
 * The database is `DATABASE_URL` (or `--database-url`); migrations may take a direct
 * URL of their own (`--migrate-url`, `DATABASE_DIRECT_URL`) when that one is pooled.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ValidationError } from "../errors.js";
import { createLogger } from "../logger.js";
import { migrate } from "../migrate.js";
import { durationSchema } from "../schedule/duration.js";
import { isTask, type AnyTask } from "../tasks.js";
import { createWorker } from "../worker/worker.js";
import { createMetrics } from "../metrics/metrics.js";
import { listenMetrics } from "../metrics/server.js";
import { isOpsCommand, OPS_COMMANDS, runOpsCommand } from "./ops.js";
import { integerFlag as rangedFlag, parseFlags, UsageError as FlagError } from "./args.js";
import { startDashboard } from "../dashboard/server.js";

const USAGE = `usage:
  punctual migrate [--database-url URL] [--migrate-url URL]
  punctual ${OPS_COMMANDS.join(" | ")} ...   (punctual jobs --help)
  punctual worker --tasks MODULE [--concurrency N] [--prefetch N] [--queues a,b] [--poll-interval MS]
                  [--lease MS] [--retention DURATION|off] [--poll-only] [--no-prepare]
                  [--shutdown-timeout MS] [--migrate [--migrate-url URL]] [--database-url URL]
                  [--metrics-port PORT [--metrics-host HOST]]
  punctual dashboard [--port 4000] [--host 127.0.0.1] [--read-only] [--database-url URL]
                     [--token T | --basic-auth user:pass]

--poll-only: no LISTEN connection (for PgBouncer in transaction mode).
--no-prepare: no prepared statements (for PgBouncer in transaction mode before 1.21,
or with max_prepared_statements = 0).
--migrate-url: where migrations run, when the database URL goes through PgBouncer in
transaction mode (migrating holds a session lock): a direct URL. Default
DATABASE_DIRECT_URL, else the database URL.
--prefetch: claimed jobs that may wait for a slot beyond --concurrency (default 500; 0: none).
--metrics-port: serve /metrics (Prometheus), /healthz and /readyz on this port, on
--metrics-host (default 127.0.0.1; 0.0.0.0 in a pod, for its probes).
SIGTERM/SIGINT: stop claiming, let running jobs finish within --shutdown-timeout
(default 10000), hand the rest back to pending, exit 0. A second signal exits at once.

dashboard: the web dashboard, on 127.0.0.1 unless --host says otherwise; an address
beyond loopback (0.0.0.0 in a container) needs --token (or PUNCTUAL_DASHBOARD_TOKEN) or
--basic-auth (or PUNCTUAL_DASHBOARD_BASIC_AUTH). --read-only: no actions.

MODULE exports tasks made with defineTask (named exports, or a default array).
The database is DATABASE_URL unless --database-url is given.`;

const OPTIONS = {
  "database-url": { type: "string" },
  tasks: { type: "string" },
  concurrency: { type: "string" },
  prefetch: { type: "string" },
  queues: { type: "string" },
  "poll-interval": { type: "string" },
  "shutdown-timeout": { type: "string" },
  lease: { type: "string" },
  retention: { type: "string" },
  "poll-only": { type: "boolean" },
  // Its own switch: Node 20's parseArgs has no negated booleans (allowNegative).
  "no-prepare": { type: "boolean" },
  migrate: { type: "boolean" },
  "migrate-url": { type: "string" },
  "metrics-port": { type: "string" },
  "metrics-host": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/** The worker options the flags set, by the name `createWorker`'s errors give them. */
const WORKER_FLAGS: Record<string, string> = {
  concurrency: "--concurrency",
  prefetch: "--prefetch",
  queues: "--queues",
  pollIntervalMs: "--poll-interval",
  leaseMs: "--lease",
  retention: "--retention",
};

/** A bad command line: reported in one line with a pointer to --help, exit code 2. */
class UsageError extends Error {}

/**
 * Parses the command line. Node's own parseArgs errors read as internals ("To specify
 * a positional argument starting with a '-', ..."), so the tokens are checked here
 * first, and every problem names the flag as the user typed it.
 */
function parseCommandLine(argv: string[]) {
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (!Object.hasOwn(OPTIONS, token.name)) throw new UsageError(`unknown option ${token.rawName}`);
    const option = OPTIONS[token.name as keyof typeof OPTIONS];
    if (option.type === "boolean" && token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`);
    if (option.type === "string" && token.value === undefined) throw new UsageError(`${token.rawName} needs a value`);
    if (option.type === "string" && !token.inlineValue && token.value!.startsWith("-")) {
      throw new UsageError(`${token.rawName} needs a value; got "${token.value}" (write ${token.rawName}=${token.value} if you mean it)`);
    }
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (error) {
    // What the checks above missed, in Node's words.
    throw new UsageError((error as Error).message);
  }
  const [, extra] = parsed.positionals;
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  return parsed;
}

/** An integer flag, or undefined when absent; ranges are checked by whoever uses it. */
function integerFlag(flag: string, value: string | undefined, min = Number.MIN_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(number) || number < min) {
    throw new UsageError(`--${flag} must be an integer${min > Number.MIN_SAFE_INTEGER ? ` of ${min} or more` : ""}; got "${value}"`);
  }
  return number;
}

/**
 * A PostgreSQL URL from a flag or a variable (`source`), or undefined when absent. Only
 * its shape is checked (pg says what is wrong with the server), and it is not echoed:
 * it may hold a password.
 */
function postgresUrl(source: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let protocol: string | null = null;
  try {
    protocol = new URL(value).protocol;
  } catch {
    // Not a URL at all: said below.
  }
  if (protocol !== "postgres:" && protocol !== "postgresql:") {
    throw new UsageError(`${source} must be a postgres:// or postgresql:// URL`);
  }
  return value;
}

/** A duration flag in milliseconds, or undefined when absent. */
function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success) throw new UsageError(`--${flag}: ${parsed.error.issues[0]!.message}; got "${value}"`);
  return parsed.data;
}

async function main(argv: string[]): Promise<number> {
  // The operator commands (src/cli/ops.ts) take flags and arguments of their own.
  if (isOpsCommand(argv[0])) return runOpsCommand(argv[0], argv.slice(1));
  if (argv[0] === "dashboard") return runDashboard(argv.slice(1));
  const { values, positionals } = parseCommandLine(argv);
  const [command] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  if (command === "worker" && values["migrate-url"] !== undefined && !values.migrate) {
    throw new UsageError("--migrate-url is only used with --migrate");
  }
  // Migrating holds a session advisory lock, which PgBouncer in transaction mode cannot
  // keep: a direct URL, when given, is used for it (and only for it).
  const migrateUrl =
    postgresUrl("--migrate-url", values["migrate-url"]) ??
    postgresUrl("DATABASE_DIRECT_URL", process.env.DATABASE_DIRECT_URL || undefined);
  const databaseUrl = values["database-url"] ?? process.env.DATABASE_URL;
  const logger = createLogger();
  if (command === "migrate") {
    // It needs no other URL when it has a direct one.
    const url = migrateUrl ?? databaseUrl;
    if (!url) return noDatabaseUrl();
    await migrate(url);
    logger.info("migrations applied");
    return 0;
  }
  if (!databaseUrl) return noDatabaseUrl();
  if (command !== "worker") {
    console.error(`punctual: unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  if (!values.tasks) {
    console.error("punctual worker: --tasks MODULE is required");
    return 2;
  }
  const options = {
    concurrency: integerFlag("concurrency", values.concurrency),
    prefetch: integerFlag("prefetch", values.prefetch, 0),
    queues: values.queues?.split(",").map((q) => q.trim()),
    pollIntervalMs: integerFlag("poll-interval", values["poll-interval"]),
    leaseMs: integerFlag("lease", values.lease),
    listen: !values["poll-only"],
    prepare: !values["no-prepare"],
    retention: values.retention === "off" ? (false as const) : durationFlag("retention", values.retention),
  };
  const timeoutMs = integerFlag("shutdown-timeout", values["shutdown-timeout"], 0) ?? 10_000;
  // 0: any free port (the log line that says where it serves tells which).
  const metricsPort = integerFlag("metrics-port", values["metrics-port"], 0);
  if (metricsPort !== undefined && metricsPort > 65_535) throw new UsageError(`--metrics-port must be a port from 0 to 65535; got "${values["metrics-port"]}"`);
  if (values["metrics-host"] !== undefined && metricsPort === undefined) throw new UsageError("--metrics-host is only used with --metrics-port");
  const tasks = await loadTasks(values.tasks);
  let worker;
  try {
    // Constructing checks the options without connecting: a bad flag is refused before --migrate runs.
    worker = createWorker({ connectionString: databaseUrl, tasks, logger, ...options });
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const flag = WORKER_FLAGS[error.field.split(".")[0]!];
    if (!flag) throw error;
    // "pollIntervalMs: Too small: ..." becomes "--poll-interval: Too small: ...".
    throw new UsageError(`${flag}: ${error.message.slice(error.field.length + 2)}`);
  }
  if (values.migrate) await migrate(migrateUrl ?? databaseUrl);
  // Listening before start: probes answer (not ready) while the worker connects.
  const metricsServer =
    metricsPort === undefined
      ? undefined
      : await listenMetrics(createMetrics(worker, { processMetrics: true }).handler, { port: metricsPort, host: values["metrics-host"] });
  if (metricsServer) logger.info({ address: metricsServer.address() }, "serving /metrics, /healthz and /readyz");
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

const DASHBOARD_FLAGS = {
  "database-url": { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "read-only": { type: "boolean" },
  token: { type: "string" },
  "basic-auth": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/** `punctual dashboard`: serves until SIGTERM or SIGINT, then closes and exits 0. Bad flags, or a non-loopback host without auth: exit 2. */
async function runDashboard(argv: string[]): Promise<number> {
  let running;
  try {
    const { values, positionals } = parseFlags(argv, DASHBOARD_FLAGS);
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (positionals.length) throw new FlagError(`unexpected argument "${positionals[0]}"`);
    const token = (values.token as string | undefined) ?? (process.env.PUNCTUAL_DASHBOARD_TOKEN || undefined);
    const basic = (values["basic-auth"] as string | undefined) ?? (process.env.PUNCTUAL_DASHBOARD_BASIC_AUTH || undefined);
    const colon = basic?.indexOf(":") ?? -1;
    if (basic !== undefined && (colon < 1 || colon === basic.length - 1)) throw new FlagError("--basic-auth must be user:password");
    const port = rangedFlag("port", values.port as string | undefined, 0, 65_535) ?? 4000;
    const databaseUrl = postgresUrl("--database-url", values["database-url"] as string | undefined) ?? process.env.DATABASE_URL;
    if (!databaseUrl) return noDatabaseUrl();
    const auth = token || basic ? { token, ...(basic ? { username: basic.slice(0, colon), password: basic.slice(colon + 1) } : {}) } : undefined;
    running = await startDashboard({ connectionString: databaseUrl, port, host: values.host as string | undefined, readOnly: values["read-only"] === true, auth });
  } catch (error) {
    if (!(error instanceof FlagError || error instanceof ValidationError || error instanceof UsageError)) throw error;
    // "host: refusing ..." as "--host: refusing ...": the flag the user typed.
    const message = error instanceof ValidationError ? `--${error.message}` : error.message;
    console.error(`punctual dashboard: ${message} (see punctual --help)`);
    return 2;
  }
  const logger = createLogger();
  logger.info({ url: running.url }, "dashboard listening");
  const dashboard = running;
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "dashboard closing");
      void dashboard.close().then(resolve);
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  return 0;
}

function noDatabaseUrl(): number {
  console.error("punctual: set DATABASE_URL or pass --database-url");
  return 2;
}

/** Imports a module and collects the tasks it exports. */
async function loadTasks(modulePath: string): Promise<AnyTask[]> {
  const mod = (await import(pathToFileURL(path.resolve(modulePath)).href)) as Record<string, unknown>;
  const candidates = Object.values(mod).flatMap((value) => (Array.isArray(value) ? value : [value]));
  const tasks = [...new Set(candidates.filter(isTask))];
  if (tasks.length === 0) throw new Error(`${modulePath} exports no tasks (made with defineTask)`);
  return tasks;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`punctual: ${error.message} (see punctual --help)`);
      process.exit(2);
    }
    console.error(error instanceof Error ? `punctual: ${error.message}` : error);
    process.exit(1);
  },
);
