/**
 * OpenTelemetry end to end: real jobs, a real worker and database, and the real SDK
 * recording spans in memory. The enqueuer's span context travels on the row
 * (`trace_context`); the worker's run span links to it.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineTask } from "../../src/index.js";
import { ONE_ROW_PAYLOAD_MAX_CHARS } from "../../src/sql/enqueue-one.js";
import { collect, next } from "../support/events.js";
import { workerHarness } from "../support/worker-harness.js";

const t = workerHarness({ pollIntervalMs: 20, backoff: { baseMs: 1, maxMs: 5 } });
const VERSION = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;

const ran: string[] = [];
const work = defineTask({ name: "otel-work", payload: z.object({ n: z.number().optional(), big: z.string().optional() }), run: () => void ran.push("work") });

/** The app's tracer, as the code that enqueues would have it. */
const app = () => trace.getTracer("app");

/** Runs `fn` inside an active span of the app and returns its result and the span. */
async function inSpan<T>(name: string, fn: () => Promise<T>): Promise<{ result: T; span: Span }> {
  return app().startActiveSpan(name, async (span) => {
    try {
      return { result: await fn(), span };
    } finally {
      span.end();
    }
  });
}

async function traceContextOf(id: number): Promise<unknown> {
  const { rows } = await t.db.pool.query("select trace_context from punctual.jobs where id = $1", [id]);
  return rows[0].trace_context;
}

const traceparentOf = (span: Span) => `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`;

describe("with @opentelemetry/api but no SDK registered", () => {
  // First in the file: the SDK is registered below, for the other tests.
  it("nothing is stored (no span is ever active) and jobs run as before, each without a span", async () => {
    const { result, span } = await inSpan("request", () => t.punctual.enqueue(work, { n: 1 }));
    expect(span.spanContext().traceId).toBe("0".repeat(32)); // the API's no-op span
    expect(await traceContextOf(result.id)).toBeNull();
    const [batch] = await inSpan("request", () => t.punctual.enqueueMany([{ task: work, payload: { n: 2 } }])).then((r) => r.result);
    expect(await traceContextOf(batch!.id)).toBeNull();
    const worker = t.startWorker({ tasks: [work] });
    await collect(worker, "job:succeeded", 2);
  });
});

describe("with an SDK", () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  });
  afterAll(() => {
    trace.disable();
    propagation.disable();
    context.disable();
  });
  beforeEach(() => {
    exporter.reset();
    ran.splice(0);
  });

  /** The finished run spans (the app's own spans left out), in the order they ended. */
  const runSpans = () => exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === "punctual");
  const linkedTo = (span: ReadableSpan) => span.links.map((l) => `${l.context.traceId}/${l.context.spanId}`);
  const idOf = (span: Span) => `${span.spanContext().traceId}/${span.spanContext().spanId}`;

  it("a job enqueued inside a span: its row keeps the span's W3C context, and its run span links to that span", async () => {
    const { result, span: request } = await inSpan("POST /signup", () => t.punctual.enqueue(work, { n: 1 }, { key: "welcome:ada", queue: "emails" }));
    // What the W3C propagator would send for that span, byte for byte.
    const headers: Record<string, string> = {};
    propagation.inject(trace.setSpan(ROOT_CONTEXT, request), headers);
    expect(await traceContextOf(result.id)).toEqual(headers);
    expect(headers.traceparent).toBe(traceparentOf(request));

    const worker = t.startWorker({ tasks: [work], queues: ["emails"] });
    await next(worker, "job:succeeded");
    const [run] = runSpans();
    expect(run!.name).toBe("punctual.run otel-work");
    expect(run!.kind).toBe(SpanKind.CONSUMER);
    expect(run!.instrumentationScope).toMatchObject({ name: "punctual", version: VERSION });
    // A link, not a parent: the run is a trace of its own.
    expect(linkedTo(run!)).toEqual([idOf(request)]);
    expect(run!.links[0]!.context.isRemote).toBe(true);
    expect(run!.parentSpanContext).toBeUndefined();
    expect(run!.spanContext().traceId).not.toBe(request.spanContext().traceId);
    expect(run!.attributes).toEqual({
      "messaging.system": "punctual",
      "messaging.operation.type": "process",
      "messaging.operation.name": "run",
      "messaging.destination.name": "emails",
      "messaging.message.id": String(result.id),
      "punctual.job.id": result.id,
      "punctual.job.task": "otel-work",
      "punctual.job.queue": "emails",
      "punctual.job.attempt": 1,
      "punctual.job.key": "welcome:ada",
    });
    expect(run!.status.code).toBe(SpanStatusCode.UNSET);
    expect(run!.ended).toBe(true);
  });

  it("a job enqueued with no span active: trace_context null, a run span without a link (and without a key attribute)", async () => {
    const { id } = await t.punctual.enqueue(work, {});
    expect(await traceContextOf(id)).toBeNull();
    const worker = t.startWorker({ tasks: [work] });
    await next(worker, "job:succeeded");
    const [run] = runSpans();
    expect(run!.links).toEqual([]);
    expect(run!.parentSpanContext).toBeUndefined();
    expect(run!.attributes["punctual.job.key"]).toBeUndefined();
    expect(run!.attributes["punctual.job.id"]).toBe(id);
  });

  it("a handler that throws: status ERROR with the exception event; the retry's span has the next attempt, and the same link", async () => {
    let calls = 0;
    const flaky = defineTask({
      name: "otel-flaky",
      payload: z.object({}),
      run: () => {
        calls += 1;
        if (calls === 1) throw new TypeError("first attempt fails");
      },
    });
    const { result, span: request } = await inSpan("request", () => t.punctual.enqueue(flaky, {}, { maxAttempts: 2 }));
    const worker = t.startWorker({ tasks: [flaky] });
    await next(worker, "job:succeeded");
    const [failed, succeeded] = runSpans();
    expect(failed!.attributes["punctual.job.attempt"]).toBe(1);
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: "first attempt fails" });
    expect(failed!.attributes["error.type"]).toBe("TypeError");
    expect(failed!.events.map((e) => e.name)).toEqual(["exception"]);
    expect(failed!.events[0]!.attributes).toMatchObject({ "exception.type": "TypeError", "exception.message": "first attempt fails" });
    expect(succeeded!.attributes["punctual.job.attempt"]).toBe(2);
    expect(succeeded!.status.code).toBe(SpanStatusCode.UNSET);
    expect(succeeded!.events).toEqual([]);
    // Every attempt links to the enqueuer; each is a trace of its own.
    expect([failed, succeeded].map((s) => linkedTo(s!))).toEqual([[idOf(request)], [idOf(request)]]);
    expect(failed!.spanContext().traceId).not.toBe(succeeded!.spanContext().traceId);
    expect(await traceContextOf(result.id)).toEqual({ traceparent: traceparentOf(request) });
  });

  it("a span started inside the handler is a child of the run span", async () => {
    const nested = defineTask({
      name: "otel-nested",
      payload: z.object({}),
      run: async () => {
        await app().startActiveSpan("send email", async (span) => {
          await Promise.resolve();
          span.end();
        });
      },
    });
    await t.punctual.enqueue(nested, {});
    const worker = t.startWorker({ tasks: [nested] });
    await next(worker, "job:succeeded");
    const [run] = runSpans();
    const inner = exporter.getFinishedSpans().find((s) => s.name === "send email");
    expect(inner!.parentSpanContext?.spanId).toBe(run!.spanContext().spanId);
    expect(inner!.spanContext().traceId).toBe(run!.spanContext().traceId);
  });

  it("enqueueMany inside a span: every job of the batch carries the context, and each run links to the span", async () => {
    const { result, span: request } = await inSpan("import", () =>
      t.punctual.enqueueMany([1, 2, 3].map((n) => ({ task: work, payload: { n }, key: `batch:${n}` }))),
    );
    for (const { id } of result) expect(await traceContextOf(id)).toEqual({ traceparent: traceparentOf(request) });
    const worker = t.startWorker({ tasks: [work] });
    await collect(worker, "job:succeeded", 3);
    expect(runSpans().map(linkedTo)).toEqual([[idOf(request)], [idOf(request)], [idOf(request)]]);
    expect(runSpans().map((s) => s.attributes["punctual.job.key"]).sort()).toEqual(["batch:1", "batch:2", "batch:3"]);
  });

  it("a large payload (enqueue through enqueue_many) carries the context too", async () => {
    const big = "x".repeat(ONE_ROW_PAYLOAD_MAX_CHARS);
    const { result, span: request } = await inSpan("upload", () => t.punctual.enqueue(work, { big }));
    expect(await traceContextOf(result.id)).toEqual({ traceparent: traceparentOf(request) });
  });

  it("replacing a pending job by key takes the new call's context, or none", async () => {
    const first = await inSpan("first", () => t.punctual.enqueue(work, { n: 1 }, { key: "debounced", delay: "1h" }));
    const second = await inSpan("second", () => t.punctual.enqueue(work, { n: 2 }, { key: "debounced", delay: "1h" }));
    expect(second.result).toMatchObject({ id: first.result.id, outcome: "replaced" });
    expect(await traceContextOf(first.result.id)).toEqual({ traceparent: traceparentOf(second.span) });
    await t.punctual.enqueue(work, { n: 3 }, { key: "debounced", delay: "1h" });
    expect(await traceContextOf(first.result.id)).toBeNull();
    // "keep" leaves the row as it was.
    await inSpan("third", () => t.punctual.enqueue(work, { n: 4 }, { key: "debounced", onConflict: "keep" }));
    expect(await traceContextOf(first.result.id)).toBeNull();
  });

  it("a job enqueued by SQL has no context and its run span no link", async () => {
    const { rows } = await t.db.pool.query("select punctual.enqueue('otel-work', '{}') as id");
    expect(await traceContextOf(Number(rows[0].id))).toBeNull();
    const worker = t.startWorker({ tasks: [work] });
    await next(worker, "job:succeeded");
    expect(runSpans().map((s) => s.links)).toEqual([[]]);
  });

  it("a SQL caller may pass its own W3C context to enqueue_many; a malformed one is refused and nothing is written", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const { rows } = await t.db.pool.query(
      `select id from punctual.enqueue_many('[{"task": "otel-work"}]', 'replace', $1)`,
      [{ traceparent, tracestate: "rojo=00f067aa0ba902b7" }],
    );
    expect(await traceContextOf(Number(rows[0].id))).toEqual({ traceparent, tracestate: "rojo=00f067aa0ba902b7" });
    for (const bad of ['"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"', "{}", '{"traceparent": "00-abc-def-01"}',
      `{"traceparent": "${traceparent}", "baggage": "a=1"}`, `{"traceparent": "00-${"0".repeat(32)}-b7ad6b7169203331-01"}`,
      `{"traceparent": "${traceparent}", "tracestate": 5}`]) {
      const error = await t.db.pool.query(`select * from punctual.enqueue_many('[{"task": "otel-work"}]', 'replace', $1::jsonb)`, [bad]).then(
        () => null,
        (e: { code?: string; column?: string; message: string }) => e,
      );
      expect(error, bad).toMatchObject({ code: "22023", column: "trace_context" });
      expect(error!.message).toMatch(/^punctual\.enqueue_many: trace_context must be null or a W3C trace context/);
    }
    const { rows: count } = await t.db.pool.query("select count(*)::int as n from punctual.jobs");
    expect(count[0].n).toBe(1);
    const worker = t.startWorker({ tasks: [work] });
    await next(worker, "job:succeeded");
    expect(runSpans().map(linkedTo)).toEqual([["0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331"]]);
  });

  it("schedules carry no context, and a periodic job's next occurrence does not inherit one: each run is its own root", async () => {
    const { result: schedule } = await inSpan("deploy", () => t.punctual.schedule("otel:hourly", work, {}, { every: "1h" }));
    expect(await traceContextOf(schedule.id)).toBeNull();
    // A periodic row given a context (by SQL), due now: its run links to it, the next
    // occurrence it leaves behind has none.
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const slot = new Date(Date.now() - 1000).toISOString();
    await t.db.pool.query(
      `select * from punctual.enqueue_many($1, 'replace', $2)`,
      [JSON.stringify([{ task: "otel-work", key: "otel:periodic", every_ms: 3_600_000, slot_at: slot, run_at: slot }]), { traceparent }],
    );
    const worker = t.startWorker({ tasks: [work] });
    await next(worker, "job:succeeded", (job) => job.key === "otel:periodic");
    expect(runSpans().map(linkedTo)).toEqual([["0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331"]]);
    const { rows } = await t.db.pool.query("select state, trace_context from punctual.jobs where key = 'otel:periodic' order by id");
    expect(rows).toEqual([
      { state: "succeeded", trace_context: { traceparent } },
      { state: "pending", trace_context: null },
    ]);
  });
});
