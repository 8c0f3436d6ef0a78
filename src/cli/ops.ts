/**
 * The operator commands of `punctual`: see and act on jobs and schedules. Each one is
 * a thin layer over `src/ops/` (the same functions the dashboard uses): parse the
 * flags, call, print a table or, with --json, one JSON document.
 *
 * Exit codes: 0 done; 1 nothing found or nothing matched (show of a missing job, retry
 * of a job that is not failed, ...); 2 a bad command line or bad input (said in one
 * line, before anything is written); 3 the database failed (unreachable, not migrated).
 */
import pg from "pg";
import { CLIENT_QUERY_TIMEOUT_MS, withConnectionDefaults } from "../connection.js";
import { ValidationError } from "../errors.js";
import { jobState, type JobState } from "../schema.js";
import { durationSchema } from "../schedule/duration.js";
import { cancelJobs, retryJobs, runNow, type ActionResult } from "../ops/actions.js";
import { enqueueJson } from "../ops/enqueue.js";
import { getJob, listJobs, type JobRef, type JobSummary } from "../ops/jobs.js";
import { inZoneForPeople, type RuleView } from "../ops/rule-view.js";
import { listSchedules } from "../ops/schedules.js";
import { jobStats, type BoundedCount } from "../ops/stats.js";
import { integerFlag, parseFlags, UsageError, type FlagSpec } from "./args.js";
import { duration, printable, short, table, utc } from "./format.js";

export const OPS_USAGE = `usage (operator commands; add --json for one JSON document on stdout):
  punctual jobs [--state S[,S]] [--task T] [--queue Q] [--key PREFIX] [--order newest|due]
                [--limit N] [--cursor C]
  punctual show <id|key> [--key KEY] [--history N]
  punctual schedules [--task T] [--queue Q] [--key PREFIX] [--limit N] [--cursor C]
  punctual stats [--count-limit N]
  punctual retry <id|key> | --key KEY | --failed [--task T] [--queue Q] [--since DURATION]
  punctual cancel <id|key> | --key KEY
  punctual run-now <id|key> | --key KEY
  punctual enqueue <task> <json> [--key KEY] [--run-at ISO | --delay DURATION] [--queue Q]
                   [--priority N] [--max-attempts N] [--on-conflict replace|keep]

<id|key>: digits are a job id; anything else is a key (the live job, else the newest
finished one). --key KEY addresses a key made of digits.
jobs: newest first; --order due lists pending jobs, earliest run_at first. A page
ends with the --cursor of the next one.
retry: failed jobs back to pending, due now; attempts go on (one more when all were
used). --failed retries every failed job the filters match.
cancel: a pending job ends cancelled; a running one is asked to stop (not retried).
run-now: a pending job becomes due now; a schedule's occurrence keeps its slot, so
the schedule's later runs do not move.
enqueue: as SQL's punctual.enqueue, with its checks. The CLI does not load your tasks:
the payload is not checked against the task's zod schema here, but by the worker
before it runs the job (a payload that fails it fails the job, without retries), and
a task name no worker runs stays pending.
Exit codes: 0 done, 1 nothing found or matched, 2 bad arguments, 3 database error.
The database is DATABASE_URL unless --database-url is given.`;

/** The commands this module runs. */
export const OPS_COMMANDS = ["jobs", "show", "schedules", "stats", "retry", "cancel", "run-now", "enqueue"] as const;
type OpsCommand = (typeof OPS_COMMANDS)[number];

export function isOpsCommand(name: string | undefined): name is OpsCommand {
  return (OPS_COMMANDS as readonly string[]).includes(name ?? "");
}

const COMMON = {
  "database-url": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies FlagSpec;

const FILTER = { task: { type: "string" }, queue: { type: "string" }, key: { type: "string" } } as const satisfies FlagSpec;

const FLAGS: Record<OpsCommand, FlagSpec> = {
  jobs: { ...COMMON, ...FILTER, state: { type: "string" }, order: { type: "string" }, limit: { type: "string" }, cursor: { type: "string" } },
  show: { ...COMMON, key: { type: "string" }, history: { type: "string" } },
  schedules: { ...COMMON, ...FILTER, limit: { type: "string" }, cursor: { type: "string" } },
  stats: { ...COMMON, "count-limit": { type: "string" } },
  retry: { ...COMMON, ...FILTER, failed: { type: "boolean" }, since: { type: "string" } },
  cancel: { ...COMMON, key: { type: "string" } },
  "run-now": { ...COMMON, key: { type: "string" } },
  enqueue: {
    ...COMMON,
    key: { type: "string" },
    "run-at": { type: "string" },
    delay: { type: "string" },
    queue: { type: "string" },
    priority: { type: "string" },
    "max-attempts": { type: "string" },
    "on-conflict": { type: "string" },
  },
};

/** How many positionals each command takes (after its name). */
const POSITIONALS: Record<OpsCommand, { min: number; max: number; names: string }> = {
  jobs: { min: 0, max: 0, names: "" },
  show: { min: 0, max: 1, names: "<id|key>" },
  schedules: { min: 0, max: 0, names: "" },
  stats: { min: 0, max: 0, names: "" },
  retry: { min: 0, max: 1, names: "<id|key>" },
  cancel: { min: 0, max: 1, names: "<id|key>" },
  "run-now": { min: 0, max: 1, names: "<id|key>" },
  enqueue: { min: 2, max: 2, names: "<task> <json>" },
};

/** The flag that set each field an `ops` function may name in a `ValidationError`. */
const FIELD_FLAGS: Record<string, string> = {
  state: "--state",
  task: "--task",
  queue: "--queue",
  keyPrefix: "--key",
  order: "--order",
  limit: "--limit",
  cursor: "--cursor",
  historyLimit: "--history",
  countLimit: "--count-limit",
  finishedWithinMs: "--since",
  key: "--key",
  id: "<id>",
};

type Values = Record<string, string | boolean | undefined>;

interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

const CONSOLE: Output = { out: (t) => console.log(t), err: (t) => console.error(t) };

/**
 * Runs one operator command and returns its exit code. Never throws: every error is
 * one line on stderr (no stack), with the code that says what kind it was.
 */
export async function runOpsCommand(
  command: OpsCommand,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: Output = CONSOLE,
): Promise<number> {
  let pool: pg.Pool | undefined;
  try {
    const { values, positionals } = parseFlags(argv, FLAGS[command]);
    if (values.help) {
      io.out(OPS_USAGE);
      return 0;
    }
    const spec = POSITIONALS[command];
    if (positionals.length > spec.max) throw new UsageError(`unexpected argument "${positionals[spec.max]}"`);
    if (positionals.length < spec.min) throw new UsageError(`${command} needs ${spec.names}`);
    const url = (values["database-url"] as string | undefined) ?? (env.DATABASE_URL || undefined);
    // Everything about the command line is checked before connecting.
    const run = prepare(command, values, positionals);
    if (!url) throw new UsageError("set DATABASE_URL or pass --database-url");
    pool = new pg.Pool({ ...withConnectionDefaults({ connectionString: url }), max: 2, query_timeout: CLIENT_QUERY_TIMEOUT_MS });
    pool.on("error", () => {}); // an idle connection dropped: the next query says so
    const result = await run(pool);
    if (values.json) io.out(JSON.stringify(result.json, null, 2));
    else if (result.text) io.out(result.text);
    if (result.error) io.err(`punctual ${command}: ${result.error}`);
    return result.code;
  } catch (error) {
    const [code, message] = describeError(command, error);
    io.err(message);
    return code;
  } finally {
    await pool?.end().catch(() => {});
  }
}

interface Result {
  code: number;
  json: unknown;
  text?: string;
  /** Said on stderr when the command found or matched nothing. */
  error?: string;
}

type Run = (pool: pg.Pool) => Promise<Result>;

/** Checks the command line and returns what to run; a `UsageError` for anything wrong. */
function prepare(command: OpsCommand, values: Values, positionals: string[]): Run {
  const str = (name: string) => values[name] as string | undefined;
  switch (command) {
    case "jobs": {
      const states = str("state")?.split(",").map((s) => s.trim());
      for (const s of states ?? []) {
        if (!(jobState.enumValues as readonly string[]).includes(s)) {
          throw new UsageError(`--state must be one or more of ${jobState.enumValues.join(", ")}; got "${s}"`);
        }
      }
      const options = {
        state: states as JobState[] | undefined,
        task: str("task"),
        queue: str("queue"),
        keyPrefix: str("key"),
        order: str("order") as "newest" | "due" | undefined,
        limit: integerFlag("limit", str("limit"), 1, 1000),
        cursor: str("cursor"),
      };
      return async (pool) => {
        const page = await listJobs(pool, options);
        const lines = [page.jobs.length ? jobTable(page.jobs) : "no jobs match"];
        if (page.nextCursor) lines.push(`more: --cursor ${page.nextCursor}`);
        return { code: 0, json: page, text: lines.join("\n") };
      };
    }
    case "show": {
      const ref = jobRef(command, values, positionals);
      const historyLimit = integerFlag("history", str("history"), 0, 1000);
      return async (pool) => {
        const job = await getJob(pool, ref, { historyLimit });
        if (!job) return { code: 1, json: null, error: `no ${describeRef(ref)}` };
        return { code: 0, json: job, text: jobDetailText(job) };
      };
    }
    case "schedules": {
      const options = { task: str("task"), queue: str("queue"), keyPrefix: str("key"), limit: integerFlag("limit", str("limit"), 1, 1000), cursor: str("cursor") };
      return async (pool) => {
        const page = await listSchedules(pool, options);
        const rows = page.schedules.map((s) => [
          printable(s.key),
          s.task,
          ruleText(s.rule),
          s.zone,
          s.rule.missed,
          s.state,
          utc(s.nextRunAt),
          s.nextRunAt ? inZoneForPeople(s.nextRunAt, s.zone) : "-",
          s.lastOutcome ? `${s.lastOutcome.state} ${utc(s.lastOutcome.finishedAt)}${s.lastOutcome.lastError ? ` ${printable(short(s.lastOutcome.lastError, 50))}` : ""}` : "-",
        ]);
        const lines = [
          rows.length
            ? table(["KEY", "TASK", "RULE", "ZONE", "MISSED", "STATE", "NEXT RUN (UTC)", "NEXT RUN (LOCAL)", "LAST OUTCOME"], rows)
            : "no schedules",
        ];
        if (page.nextCursor) lines.push(`more: --cursor ${page.nextCursor}`);
        return { code: 0, json: page, text: lines.join("\n") };
      };
    }
    case "stats": {
      const countLimit = integerFlag("count-limit", str("count-limit"), 1, 10_000_000);
      return async (pool) => {
        const stats = await jobStats(pool, { countLimit });
        const n = (c: BoundedCount) => `${c.count}${c.capped ? "+" : ""}`;
        const states = (Object.keys(stats.states) as JobState[]).map((s) => `${s} ${n(stats.states[s])}`).join("  ");
        const queues = stats.queues.map((q) => [
          q.queue,
          n(q.due),
          q.oldestDueAgeMs === null ? "-" : duration(q.oldestDueAgeMs),
          n(q.scheduled),
          n(q.running),
          n(q.failedLastHour),
        ]);
        const text = [
          `at ${utc(stats.at)} (counts read up to ${stats.countLimit}; "+" means at least)`,
          `states: ${states}`,
          `failed in the last hour: ${n(stats.failedLastHour)}`,
          queues.length ? table(["QUEUE", "DUE", "OLDEST DUE", "SCHEDULED", "RUNNING", "FAILED 1H"], queues) : "no live jobs in any queue",
        ].join("\n");
        return { code: 0, json: stats, text };
      };
    }
    case "retry": {
      if (values.failed) {
        if (positionals.length || values.key !== undefined) throw new UsageError("retry takes <id|key>, --key or --failed, not more than one");
        const since = values.since === undefined ? undefined : durationFlag("since", str("since")!);
        const filter = { state: "failed" as const, task: str("task"), queue: str("queue"), finishedWithinMs: since };
        return async (pool) => actionResult("retried", "no failed jobs match", await retryJobs(pool, { filter }));
      }
      for (const flag of ["task", "queue", "since"]) {
        if (values[flag] !== undefined) throw new UsageError(`--${flag} filters retry --failed; it does not apply to one job`);
      }
      const ref = jobRef(command, values, positionals);
      return async (pool) => singleAction(ref, "retried, due now", await retryJobs(pool, ref), "not retried");
    }
    case "cancel":
    case "run-now": {
      const ref = jobRef(command, values, positionals);
      const act = command === "cancel" ? cancelJobs : runNow;
      const done = command === "cancel" ? "cancelled" : "due now";
      return async (pool) => singleAction(ref, done, await act(pool, ref), command === "cancel" ? "not cancelled" : "not run now");
    }
    case "enqueue": {
      const [task, payloadText] = positionals as [string, string];
      try {
        JSON.parse(payloadText);
      } catch (error) {
        throw new UsageError(`<json> must be JSON: ${(error as Error).message}`);
      }
      if (values["run-at"] !== undefined && values.delay !== undefined) throw new UsageError("give --run-at or --delay, not both");
      const runAt = str("run-at");
      if (runAt !== undefined && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(runAt)) {
        throw new UsageError(`--run-at must be an ISO 8601 date-time with a zone, such as 2030-01-01T08:00:00Z; got "${runAt}"`);
      }
      const options = {
        key: str("key"),
        runAt,
        delayMs: values.delay === undefined ? undefined : durationFlag("delay", str("delay")!),
        queue: str("queue"),
        priority: str("priority"),
        maxAttempts: str("max-attempts"),
        onConflict: str("on-conflict"),
      };
      return async (pool) => {
        const result = await enqueueJson(pool, task, payloadText, options);
        const text = `${result.outcome} job ${result.id} (${task})${result.key ? ` key ${printable(result.key)}` : ""}: ${result.state}, due ${utc(result.runAt)}`;
        return { code: 0, json: result, text };
      };
    }
  }
}

/** The job a command addresses: `<id|key>` (digits are an id) or `--key KEY`. */
function jobRef(command: string, values: Values, positionals: string[]): JobRef {
  const [arg] = positionals;
  const key = values.key as string | undefined;
  if (arg !== undefined && key !== undefined) throw new UsageError(`${command} takes <id|key> or --key, not both`);
  if (key !== undefined) return { key };
  if (arg === undefined) throw new UsageError(`${command} needs <id|key>`);
  if (/^\d+$/.test(arg)) {
    const id = Number(arg);
    if (!Number.isSafeInteger(id) || id < 1) throw new UsageError(`"${arg}" is not a job id (ids are 1 or more)`);
    return { id };
  }
  return { key: arg };
}

function describeRef(ref: JobRef): string {
  return "id" in ref ? `job ${ref.id}` : `job with key "${printable(ref.key)}"`;
}

/** A one-job action's output: exit 0 when it changed the job, 1 when there was none or it did not apply. */
function singleAction(ref: JobRef, done: string, result: ActionResult, notDone: string): Result {
  const changed = result.changed[0];
  if (changed) {
    const running = done === "cancelled" && changed.state === "running";
    const text = running
      ? `cancel requested for running job ${changed.id}: its handler's signal fires; it is not retried, and ends cancelled unless it succeeds`
      : `job ${changed.id}${changed.key ? ` (key ${printable(changed.key)})` : ""} ${done}: ${changed.state}`;
    return { code: 0, json: result, text };
  }
  const skipped = result.skipped[0];
  if (!skipped) return { code: 1, json: result, error: `no ${describeRef(ref)}` };
  return { code: 1, json: result, error: `job ${skipped.id} ${notDone}: ${skipped.reason}${hint(skipped.reason)}` };
}

/** A bulk action's output: exit 0 when it changed a job, 1 when it matched none it could change. */
function actionResult(done: string, none: string, result: ActionResult): Result {
  const matched = result.changed.length + result.skipped.length;
  if (matched === 0) return { code: 1, json: result, error: none };
  const lines = [`${done} ${result.changed.length} job${result.changed.length === 1 ? "" : "s"}`];
  if (result.skipped.length) {
    lines.push(`skipped ${result.skipped.length}:`);
    for (const s of result.skipped.slice(0, 20)) lines.push(`  job ${s.id}${s.key ? ` (key ${printable(s.key)})` : ""}: ${s.reason}`);
    if (result.skipped.length > 20) lines.push(`  ... and ${result.skipped.length - 20} more (--json lists them all)`);
  }
  return { code: result.changed.length ? 0 : 1, json: result, text: lines.join("\n") };
}

/** What to do instead, for the common reasons an action is skipped. */
function hint(reason: string): string {
  if (reason.startsWith("its key has a live job")) return " (for a schedule, run-now its key runs the next occurrence now)";
  if (reason === "is pending, not failed") return " (run-now makes a pending job due now)";
  return "";
}

function durationFlag(flag: string, value: string): number {
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success) throw new UsageError(`--${flag}: ${parsed.error.issues[0]!.message}; got "${value}"`);
  if (!(parsed.data > 0) && flag === "since") throw new UsageError(`--${flag} must be more than 0; got "${value}"`);
  return parsed.data;
}

function jobTable(jobs: JobSummary[]): string {
  return table(
    ["ID", "STATE", "TASK", "QUEUE", "KEY", "ATTEMPTS", "RUN AT (UTC)", "FINISHED (UTC)", "LAST ERROR"],
    jobs.map((j) => [
      String(j.id),
      j.state,
      j.task,
      j.queue,
      printable(short(j.key, 40)) || "-",
      `${j.attempts}/${j.maxAttempts}`,
      utc(j.runAt),
      utc(j.finishedAt),
      printable(short(j.lastError, 60)),
    ]),
  );
}

function ruleText(rule: RuleView): string {
  if (rule.kind === "cron") return `cron ${rule.cron}`;
  return `every ${duration(rule.everyMs)}${rule.fixedDelay ? " (fixed delay)" : ""}`;
}

function jobDetailText(job: NonNullable<Awaited<ReturnType<typeof getJob>>>): string {
  const field = (name: string, value: string) => `${`${name}:`.padEnd(14)}${value}`;
  const indent = (text: string) => text.split("\n").map((l) => `  ${l}`).join("\n");
  const lines = [
    `job ${job.id}`,
    field("state", job.state + (job.cancelRequestedAt ? ` (cancel requested ${utc(job.cancelRequestedAt)})` : "")),
    field("task", job.task),
    field("queue", job.queue),
    field("key", job.key === null ? "-" : printable(job.key)),
    field("priority", String(job.priority)),
    field("attempts", `${job.attempts} of ${job.maxAttempts}`),
    field("run at", utc(job.runAt)),
  ];
  if (job.rule) {
    const zone = job.rule.kind === "cron" ? job.rule.tz : "UTC";
    lines.push(field("rule", `${ruleText(job.rule)}${job.rule.kind === "cron" ? ` in ${job.rule.tz}` : ""}, missed runs: ${job.rule.missed}${job.declared ? ", declared" : ""}`));
    lines.push(field("slot", job.slotAt ? `${utc(job.slotAt)} (${inZoneForPeople(job.slotAt, zone)})` : "- (not placed yet)"));
  }
  lines.push(
    field("created", utc(job.createdAt)),
    field("started", utc(job.startedAt)),
    field("finished", utc(job.finishedAt)),
    field("updated", utc(job.updatedAt)),
  );
  if (job.lockedBy) lines.push(field("locked by", `${printable(job.lockedBy)} until ${utc(job.lockedUntil)}`));
  lines.push("payload:", indent(printable(JSON.stringify(job.payload, null, 2))));
  if (job.lastError !== null) lines.push("last error:", indent(printable(job.lastError)));
  if (job.lastErrorStack !== null) lines.push("stack:", indent(printable(job.lastErrorStack)));
  if (job.key !== null) {
    lines.push(job.history.length ? `other jobs with this key, newest first:\n${jobTable(job.history)}` : "no other jobs with this key");
  }
  return lines.join("\n");
}

/** An error as one line, and its exit code: 2 for bad input, 3 for the database. */
function describeError(command: string, error: unknown): [number, string] {
  if (error instanceof UsageError) return [2, `punctual: ${error.message} (see punctual ${command} --help)`];
  if (error instanceof ValidationError) {
    const flag = FIELD_FLAGS[error.field.split(".")[0]!];
    const message = flag ? `${flag}: ${error.message.slice(error.field.length + 2)}` : error.message;
    return [2, `punctual: ${message} (see punctual ${command} --help)`];
  }
  const { code, message } = error as { code?: string; message?: string };
  // The SQL functions' own input checks (punctual.enqueue): bad input, nothing written.
  if (code === "22023" || code === "22P02" || code === "22007" || code === "22008") return [2, `punctual: ${message}`];
  if (code === "42P01" || code === "3F000") return [3, `punctual: ${message} (has \`punctual migrate\` run on this database?)`];
  return [3, `punctual: ${message ?? String(error)}`];
}
