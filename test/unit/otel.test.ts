/**
 * src/otel.ts without a database: the loader's fallback when `@opentelemetry/api`
 * cannot be imported, the W3C text it writes for a span, and the link it reads back.
 * (test/integration/otel.test.ts runs real jobs under a real SDK.)
 */
import { context, createTraceState, propagation, ROOT_CONTEXT, trace, TraceFlags, type SpanContext } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createTracing, loadTracing, NO_TRACING, TRACESTATE_MAX_CHARS, type Tracing } from "../../src/otel.js";
import { defineTask, type JobContext } from "../../src/index.js";

const task = defineTask({ name: "unit-otel", payload: z.object({}), run: async () => "done" });

const ctx = (job: Partial<JobContext["job"]> = {}): JobContext => ({
  job: { id: 7, task: "unit-otel", queue: "default", key: null, priority: 0, attempt: 1, maxAttempts: 5, runAt: new Date(0), slot: null, late: false, ...job },
  signal: new AbortController().signal,
  logger: undefined as never,
  complete: async () => {},
});

describe("without @opentelemetry/api", () => {
  it("the loader falls back to NO_TRACING when the import fails, once, without throwing", async () => {
    let imports = 0;
    const tracing = await createTracing(async () => {
      imports += 1;
      throw Object.assign(new Error("Cannot find package '@opentelemetry/api'"), { code: "ERR_MODULE_NOT_FOUND" });
    });
    expect(tracing).toBe(NO_TRACING);
    expect(imports).toBe(1);
    expect(tracing.enabled).toBe(false);
  });

  it("and when the module is not the API", async () => {
    expect(await createTracing(async () => ({ default: {} }))).toBe(NO_TRACING);
    expect(await createTracing(async () => null)).toBe(NO_TRACING);
  });

  it("NO_TRACING reads no context and hands back the handler's own promise (no wrapper, nothing allocated)", async () => {
    expect(NO_TRACING.activeTraceContext()).toBeNull();
    const promise = Promise.resolve("ran");
    const handler = defineTask({ name: "unit-otel-identity", payload: z.object({}), run: () => promise });
    expect(NO_TRACING.runJob(handler, {}, ctx(), { traceparent: "ignored" })).toBe(promise);
    const throwing = defineTask({
      name: "unit-otel-throws",
      payload: z.object({}),
      run: () => {
        throw new Error("sync");
      },
    });
    expect(() => NO_TRACING.runJob(throwing, {}, ctx(), null)).toThrow("sync");
  });

  it("the process-wide loader imports once and answers the same promise", () => {
    expect(loadTracing()).toBe(loadTracing());
  });
});

describe("with @opentelemetry/api but no SDK registered", () => {
  it("reads no context and runs the handler as NO_TRACING does: no span is made", async () => {
    const tracing = await createTracing(() => import("@opentelemetry/api"));
    expect(tracing.enabled).toBe(true);
    expect(tracing.activeTraceContext()).toBeNull();
    const promise = Promise.resolve("ran");
    const handler = defineTask({ name: "unit-otel-no-sdk", payload: z.object({}), run: () => promise });
    expect(tracing.runJob(handler, {}, ctx(), { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" })).toBe(promise);
  });
});

describe("with @opentelemetry/api", () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    tracing = await createTracing(() => import("@opentelemetry/api"));
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });
  beforeEach(() => exporter.reset());

  const spanContext: SpanContext = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.SAMPLED,
    traceState: createTraceState("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
  };
  const inside = <T>(sc: SpanContext, fn: () => T) => context.with(trace.setSpanContext(ROOT_CONTEXT, sc), fn);

  it("is enabled", () => {
    expect(tracing.enabled).toBe(true);
  });

  it("writes the active span's context exactly as W3CTraceContextPropagator does", () => {
    for (const sc of [spanContext, { ...spanContext, traceFlags: TraceFlags.NONE, traceState: undefined }]) {
      const expected: Record<string, string> = {};
      new W3CTraceContextPropagator().inject(trace.setSpanContext(ROOT_CONTEXT, sc), expected, {
        set: (carrier, key, value) => void ((carrier as Record<string, string>)[key] = value),
      });
      expect(inside(sc, () => tracing.activeTraceContext())).toEqual(expected);
    }
    expect(inside(spanContext, () => tracing.activeTraceContext())).toEqual({
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    });
  });

  it("writes nothing without a valid active span, and leaves out a tracestate beyond the bound", () => {
    expect(tracing.activeTraceContext()).toBeNull();
    expect(inside({ ...spanContext, traceId: "0".repeat(32) }, () => tracing.activeTraceContext())).toBeNull();
    const long = { ...spanContext, traceState: { serialize: () => `a=${"x".repeat(TRACESTATE_MAX_CHARS)}` } as never };
    expect(inside(long, () => tracing.activeTraceContext())).toEqual({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
  });

  it("does not use the global propagator (which could add baggage to every row)", () => {
    propagation.setGlobalPropagator({
      inject: (_ctx, carrier, setter) => setter.set(carrier, "baggage", "user.email=ada@example.com"),
      extract: (c) => c,
      fields: () => ["baggage"],
    });
    try {
      expect(Object.keys(inside(spanContext, () => tracing.activeTraceContext())!)).toEqual(["traceparent", "tracestate"]);
    } finally {
      propagation.disable();
    }
  });

  it("links the run span to a stored context, and ignores one that is not a valid W3C context", async () => {
    const stored = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "rojo=00f067aa0ba902b7" };
    const invalid: unknown[] = [
      null,
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      { traceparent: 42 },
      { traceparent: "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      { traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01" },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01" },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra" },
      { traceparent: "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01" },
    ];
    for (const traceContext of [stored, ...invalid]) await tracing.runJob(task, {}, ctx(), traceContext);
    const [linked, ...unlinked] = exporter.getFinishedSpans();
    expect(linked!.links).toEqual([
      {
        context: expect.objectContaining({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1, isRemote: true }),
      },
    ]);
    expect(linked!.links[0]!.context.traceState?.get("rojo")).toBe("00f067aa0ba902b7");
    expect(unlinked.map((s) => s.links)).toEqual(invalid.map(() => []));
    // A later version may append fields.
    await tracing.runJob(task, {}, ctx(), { traceparent: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later" });
    expect(exporter.getFinishedSpans().at(-1)!.links).toHaveLength(1);
  });

  it("returns the handler's value, and the run span is a root even inside the worker's own span", async () => {
    const result = await inside(spanContext, () => tracing.runJob(task, {}, ctx({ key: "k" }), null));
    expect(result).toBe("done");
    const [span] = exporter.getFinishedSpans();
    expect(span!.parentSpanContext).toBeUndefined();
    expect(span!.spanContext().traceId).not.toBe(spanContext.traceId);
    expect(span!.attributes).toMatchObject({ "punctual.job.key": "k", "punctual.job.id": 7 });
  });

  it("a non-Error thrown is recorded as an Error and rethrown as it was", async () => {
    const throwsString = defineTask({
      name: "unit-otel-string",
      payload: z.object({}),
      run: async () => {
        throw "plain string";
      },
    });
    await expect(tracing.runJob(throwsString, {}, ctx(), null)).rejects.toBe("plain string");
    const [span] = exporter.getFinishedSpans();
    expect(span!.status).toEqual({ code: 2, message: "plain string" });
    expect(span!.events.map((e) => [e.name, e.attributes?.["exception.message"]])).toEqual([["exception", "plain string"]]);
    // A value JSON cannot write (a cycle) still reaches the worker as it was thrown.
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const throwsCycle = defineTask({
      name: "unit-otel-cycle",
      payload: z.object({}),
      run: async () => {
        throw cycle;
      },
    });
    await expect(tracing.runJob(throwsCycle, {}, ctx(), null)).rejects.toBe(cycle);
    expect(exporter.getFinishedSpans()[1]!.status).toEqual({ code: 2, message: "[object Object]" });
  });
});
