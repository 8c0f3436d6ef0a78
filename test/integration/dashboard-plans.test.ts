import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createDashboard } from "../../src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

// Every page of the dashboard, on a table of 1,000,000 analyzed rows, issues only
// queries whose plans read indexes: no Seq Scan on punctual.jobs, so no page costs
// a pass over the table. Times are printed for the README, not asserted.

let db: TestDatabase;
const servers: Server[] = [];
const silent = pino({ level: "silent" });

beforeAll(async () => {
  db = await createTestDatabase();
  const started = Date.now();
  // One statement per shape; generate_series makes a million rows in seconds.
  await db.pool.query(`
    -- 918,000 successes over the last day, in three queues and five tasks; every tenth keyed.
    insert into punctual.jobs (task, queue, key, state, attempts, run_at, started_at, finished_at, created_at)
    select 't' || (g % 5), 'q' || (g % 3), case when g % 10 = 0 then 'user:' || g end, 'succeeded', 1,
           f - interval '2 seconds', f - interval '1 second', f, f - interval '2 seconds'
    from generate_series(1, 918000) as g, lateral (select now() - (g % 86400) * interval '1 second' as f) as at;
    -- 20,000 finished occurrences of 2,000 schedules (cron in a zone), and each schedule's live occurrence.
    insert into punctual.jobs (task, key, state, attempts, cron, tz, slot_at, run_at, started_at, finished_at)
    select 'digest', 'sched:' || (g % 2000), 'succeeded', 1, '0 * * * *', 'Europe/Paris',
           date_trunc('hour', now()) - (g / 2000) * interval '1 hour', date_trunc('hour', now()) - (g / 2000) * interval '1 hour',
           date_trunc('hour', now()) - (g / 2000) * interval '1 hour' + interval '1 second',
           date_trunc('hour', now()) - (g / 2000) * interval '1 hour' + interval '2 seconds'
    from generate_series(0, 19999) as g;
    insert into punctual.jobs (task, key, cron, tz, slot_at, run_at)
    select 'digest', 'sched:' || g, '0 * * * *', 'Europe/Paris', date_trunc('hour', now()) + interval '1 hour', date_trunc('hour', now()) + interval '1 hour'
    from generate_series(0, 1999) as g;
    -- 50,000 pending in the future, 2,000 due now, at all priorities.
    insert into punctual.jobs (task, queue, priority, run_at)
    select 't' || (g % 5), 'q' || (g % 3), (g % 21) - 10, now() + g * interval '1 second' from generate_series(1, 50000) as g;
    insert into punctual.jobs (task, queue, priority, run_at)
    select 't' || (g % 5), 'q' || (g % 3), (g % 21) - 10, now() - g * interval '1 second' from generate_series(1, 2000) as g;
    -- 20,000 failures over the day (ten of a rare task), 5,000 cancelled, 5,000 running under four workers.
    insert into punctual.jobs (task, queue, state, attempts, max_attempts, finished_at, last_error, last_error_stack)
    select case when g <= 10 then 'rare' else 't' || (g % 5) end, 'q' || (g % 3), 'failed', 5, 5,
           now() - (g * 4 % 86400) * interval '1 second', 'boom ' || g, 'Error: boom\n    at run (task.ts:1:1)'
    from generate_series(1, 20000) as g;
    insert into punctual.jobs (task, state, finished_at) select 't' || (g % 5), 'cancelled', now() - g * interval '10 seconds' from generate_series(1, 5000) as g;
    insert into punctual.jobs (task, queue, state, attempts, locked_by, locked_until, started_at)
    select 't' || (g % 5), 'q' || (g % 3), 'running', 1, 'worker-' || (g % 4), now() + interval '1 minute', now() - (g % 60) * interval '1 second'
    from generate_series(1, 5000) as g;
  `);
  const filled = Date.now();
  await db.pool.query("vacuum analyze punctual.jobs");
  const { rows: [{ n }] } = await db.pool.query("select count(*)::int as n from punctual.jobs");
  console.log(`filled ${n.toLocaleString("en-US")} rows in ${filled - started} ms, vacuum analyze ${Date.now() - filled} ms`);
});
afterAll(async () => {
  for (const server of servers) await new Promise((r) => server.close(r));
  await db.drop();
});

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];

/** An executor that runs each statement under EXPLAIN first and keeps its plan, then for real. */
function explaining() {
  const plans: { text: string; plan: PlanNode }[] = [];
  return {
    plans,
    executor: {
      async query(config: { text: string; values?: unknown[] }) {
        const { rows } = await db.pool.query({ text: `explain (format json) ${config.text}`, values: config.values });
        plans.push({ text: config.text, plan: rows[0]["QUERY PLAN"][0].Plan });
        return db.pool.query(config);
      },
    },
  };
}

async function serve(handler: ReturnType<typeof createDashboard>): Promise<string> {
  const server = createServer(handler).listen(0, "127.0.0.1");
  servers.push(server);
  await new Promise((r) => server.once("listening", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

it("every page reads indexes on 1,000,000 rows: no Seq Scan on punctual.jobs", async () => {
  const { rows: [{ collate }] } = await db.pool.query("select datcollate as collate from pg_database where datname = current_database()");
  // LIKE 'prefix%' reads a range of the key index only under the C collation (see cli-ops.test.ts).
  const cCollation = collate === "C" || collate === "POSIX";
  const spy = explaining();
  const explained = await serve(createDashboard({ executor: spy.executor as never, logger: silent }));
  const plain = await serve(createDashboard({ executor: db.pool, logger: silent }));

  const pick = async (sql: string) => Number((await db.pool.query(sql)).rows[0].id);
  const keyed = await pick("select id from punctual.jobs where key = 'user:444440' limit 1");
  const failed = await pick("select id from punctual.jobs where state = 'failed' and task = 'rare' limit 1");
  const pending = await pick("select id from punctual.jobs where state = 'pending' and key is null and run_at > now() limit 1");
  const nextPage = async (origin: string, path: string) => {
    const body = await (await fetch(`${origin}${path}`)).text();
    return /id="next-page" href="([^"]+)"|href="([^"]+)" id="next-page"/.exec(body.replaceAll("&amp;", "&"))!.slice(1).find(Boolean)!;
  };
  const pages: [string, string][] = [
    ["overview", "/"],
    ["jobs", "/jobs"],
    ["jobs, page 2", await nextPage(plain, "/jobs")],
    ["jobs failed", "/jobs?state=failed"],
    ["jobs failed of a task", "/jobs?state=failed&task=rare"],
    ["jobs cancelled", "/jobs?state=cancelled"],
    ["jobs running", "/jobs?state=running"],
    ["jobs pending, earliest due", "/jobs?state=pending&order=due"],
    ["jobs pending, earliest due, page 2", await nextPage(plain, "/jobs?state=pending&order=due")],
    ["jobs by key prefix", "/jobs?key=user%3A44444"],
    ["job detail (keyed)", `/jobs/${keyed}`],
    ["job detail (failed)", `/jobs/${failed}`],
    ["schedules", "/schedules"],
    ["schedules, page 2", await nextPage(plain, "/schedules")],
    ["schedule detail", "/schedule?key=sched%3A17"],
    ["workers", "/workers"],
    ["confirm retry of one job", `/jobs/${failed}/retry`],
    ["confirm retry, failed of a task", "/actions/retry?state=failed&task=rare"],
    ["confirm retry, all failed", "/actions/retry?state=failed"],
    ["confirm cancel, pending of a task", "/actions/cancel?state=pending&task=t1"],
    ["confirm cancel, running", "/actions/cancel?state=running"],
    ["confirm run now, pending of a queue", "/actions/run-now?state=pending&queue=q2"],
  ];

  const report: string[] = [];
  for (const [name, path] of pages) {
    spy.plans.length = 0;
    const response = await fetch(`${explained}${path}`);
    expect(response.status, `${name}: ${await response.clone().text()}`).toBe(200);
    await response.text();
    expect(spy.plans.length, name).toBeGreaterThan(0);
    const indexes = new Set<string>();
    for (const { text, plan } of spy.plans) {
      const all = nodes(plan);
      for (const n of all) if (n["Index Name"]) indexes.add(n["Index Name"]);
      const seqScans = all.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "jobs");
      if (name === "jobs by key prefix" && !cCollation) continue;
      expect(seqScans, `${name}: ${text}`).toEqual([]);
    }
    // Render time on the plain pool: a first request, then a warm one.
    const times: number[] = [];
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      await (await fetch(`${plain}${path}`)).text();
      times.push(performance.now() - t0);
    }
    report.push(`${name.padEnd(38)} ${times.map((t) => `${t.toFixed(0).padStart(5)} ms`).join(" ")}   ${spy.plans.length} queries: ${[...indexes].join(", ")}`);
  }

  // Actions, by POST: a bulk retry of the rare task's failures and the cancel of one job.
  for (const [name, path] of [
    ["retry failed of a task", "/actions/retry?state=failed&task=rare"],
    ["cancel one job", `/jobs/${pending}/cancel`],
  ] as const) {
    const confirm = await (await fetch(`${explained}${path}`)).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(confirm)![1]!;
    spy.plans.length = 0;
    const t0 = performance.now();
    const posted = await fetch(`${explained}${path}`, { method: "POST", body: new URLSearchParams({ csrf }), redirect: "manual" });
    const elapsed = performance.now() - t0;
    expect(posted.status, name).toBe(303);
    for (const { text, plan } of spy.plans) {
      expect(nodes(plan).filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "jobs"), `${name}: ${text}`).toEqual([]);
    }
    report.push(`POST ${name.padEnd(33)} ${elapsed.toFixed(0).padStart(5)} ms (with EXPLAIN)   ${spy.plans.length} queries`);
  }
  const { rows: [{ retried }] } = await db.pool.query("select count(*)::int as retried from punctual.jobs where task = 'rare' and state = 'pending'");
  expect(retried).toBe(10);
  expect((await db.pool.query("select state from punctual.jobs where id = $1", [pending])).rows[0].state).toBe("cancelled");

  console.log(`dashboard pages on 1,000,000 rows (collation ${collate}); render time first, warm; queries and the indexes they read:\n${report.join("\n")}`);
});
