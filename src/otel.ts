/**
 * OpenTelemetry, when the app has it: a span per job run, linked to the span that
 * enqueued the job. `@opentelemetry/api` is an optional peer dependency, imported once
 * per process (`loadTracing`); when it is not installed, `NO_TRACING` stands in, whose
 * methods do nothing but their job's minimum (return null, call the handler): no
 * try/catch and no allocation per job.
 *
 * Nothing here names the API's types in a signature, so the declarations of the
 * modules that use it (client, worker) do not require the package either.
 */
import { readFileSync } from "node:fs";
import type * as OtelApi from "@opentelemetry/api";
import type { AnyTask, JobContext } from "./tasks.js";

/**
 * A job's `trace_context`: the W3C Trace Context of the span that enqueued it, as the
 * `traceparent` and `tracestate` headers would carry it.
 */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/** What the client and the worker ask of tracing. */
export interface Tracing {
  /** True when `@opentelemetry/api` was found. */
  readonly enabled: boolean;
  /**
   * The W3C context of the span active where this is called (the enqueuer's), or null
   * when no valid span is active: no OpenTelemetry, no SDK registered, or no span.
   */
  activeTraceContext(): TraceCarrier | null;
  /**
   * Runs the handler `task.run(payload, ctx)` and returns what it returns (or throws
   * what it throws). With OpenTelemetry, inside a span of its own (see `OtelTracing`),
   * linked to the job's stored `traceContext` when it has one.
   */
  runJob(task: AnyTask, payload: unknown, ctx: JobContext, traceContext: unknown): unknown;
}

/** Tracing without OpenTelemetry. */
export const NO_TRACING: Tracing = {
  enabled: false,
  activeTraceContext: () => null,
  runJob: (task, payload, ctx) => task.run(payload as never, ctx),
};

/**
 * The longest `tracestate` stored (characters). W3C asks that at least 512 be
 * propagated; a longer one is left out (the link keeps its trace and span ids).
 * drizzle/0010 refuses longer ones from SQL callers.
 */
export const TRACESTATE_MAX_CHARS = 8192;

/** The tracer's name, as instrumentation scope. */
export const TRACER_NAME = "punctual";

type Api = typeof OtelApi;

/**
 * Makes tracing from the module `importApi` resolves to (by default
 * `import("@opentelemetry/api")`), or `NO_TRACING` when it rejects (the package is not
 * installed) or does not look like the API.
 */
export async function createTracing(importApi: () => Promise<unknown> = importOtelApi): Promise<Tracing> {
  let module: unknown;
  try {
    module = await importApi();
  } catch {
    return NO_TRACING;
  }
  // ESM gets the API's named exports; a CommonJS build seen through an older
  // interop may only have them under `default`.
  const api = [module, (module as { default?: unknown } | null)?.default].find(hasTrace) as Api | undefined;
  return api ? new OtelTracing(api, packageVersion()) : NO_TRACING;
}

const importOtelApi = () => import("@opentelemetry/api");

function hasTrace(value: unknown): boolean {
  return typeof value === "object" && value !== null && typeof (value as { trace?: { getTracer?: unknown } }).trace?.getTracer === "function";
}

/** Punctual's version, for the tracer; read once, when OpenTelemetry is there. */
function packageVersion(): string | undefined {
  try {
    // src/otel.ts and dist/otel.js both sit one folder below package.json.
    return JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
  } catch {
    return undefined;
  }
}

let loaded: Tracing | undefined;
let loading: Promise<Tracing> | undefined;

/**
 * The process's tracing: the first call starts the import (clients and workers call it
 * when they are created), every call returns the same promise.
 */
export function loadTracing(): Promise<Tracing> {
  return (loading ??= createTracing().then((tracing) => (loaded = tracing)));
}

/** The process's tracing if `loadTracing` has finished, without waiting. */
export function loadedTracing(): Tracing | undefined {
  return loaded;
}

/**
 * A thrown value that is not an Error, in words: as the worker stores it (toError in
 * worker/job-runner.ts), but never throwing itself (a cycle), since the handler's own
 * value is what must reach the worker.
 */
function describeThrown(thrown: unknown): string {
  if (typeof thrown === "string") return thrown;
  try {
    return JSON.stringify(thrown) ?? String(thrown);
  } catch {
    return String(thrown);
  }
}

/** traceparent: version, trace id, parent (span) id, flags; a later version may append fields. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Tracing with `@opentelemetry/api`. The run span:
 * - name `punctual.run <task>`, kind CONSUMER, a root: each run is a trace of its own,
 *   whatever the worker's own context holds;
 * - a link (not a parent) to the enqueuer's span, when the row carries its context: the
 *   run may come hours later, once per attempt, and OpenTelemetry's messaging
 *   conventions link a consumer's process span to the message's creation context;
 * - attributes `punctual.job.{id,task,queue,attempt,key}` and the messaging ones;
 * - the handler runs with the span active, so spans it starts are its children;
 * - a thrown error is recorded (exception event, status ERROR, `error.type`), and the
 *   span ends when the handler returns or throws.
 */
class OtelTracing implements Tracing {
  readonly enabled = true;
  /**
   * The tracer, and the global provider it came from. Asked again when that provider
   * changes: a tracer taken before an SDK was registered finds it (a ProxyTracer), but
   * one taken before `trace.disable()` (tests re-registering an SDK) would not.
   */
  private provider: OtelApi.TracerProvider | undefined;
  private tracer: OtelApi.Tracer | undefined;
  /** The API's no-op provider: the one the global provider delegates to until an SDK is registered. */
  private readonly noopProvider: OtelApi.TracerProvider;

  constructor(
    private readonly api: Api,
    private readonly version: string | undefined,
  ) {
    this.noopProvider = new api.ProxyTracerProvider().getDelegate();
  }

  activeTraceContext(): TraceCarrier | null {
    const { api } = this;
    const span = api.trace.getSpan(api.context.active());
    if (span === undefined) return null;
    const context = span.spanContext();
    if (!api.isSpanContextValid(context)) return null;
    // Written from the span context as W3CTraceContextPropagator writes it, rather than
    // by the app's global propagator: that one may add baggage (app data, up to 8 KB,
    // on every row) or speak another format (B3) that a worker elsewhere cannot read.
    const traceparent = `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
    const tracestate = context.traceState?.serialize();
    return tracestate && tracestate.length <= TRACESTATE_MAX_CHARS ? { traceparent, tracestate } : { traceparent };
  }

  runJob(task: AnyTask, payload: unknown, ctx: JobContext, traceContext: unknown): unknown {
    const provider = this.api.trace.getTracerProvider();
    // The API without an SDK (often there as another library's dependency): no span
    // could be recorded, so none is made, and a job costs what it costs without it.
    // An SDK registered later is seen at the next job.
    if (provider instanceof this.api.ProxyTracerProvider && provider.getDelegate() === this.noopProvider) {
      return task.run(payload as never, ctx);
    }
    return this.runInSpan(provider, task, payload, ctx, traceContext);
  }

  private async runInSpan(
    provider: OtelApi.TracerProvider,
    task: AnyTask,
    payload: unknown,
    ctx: JobContext,
    traceContext: unknown,
  ): Promise<unknown> {
    const { api } = this;
    const { job } = ctx;
    const attributes: OtelApi.Attributes = {
      "messaging.system": "punctual",
      "messaging.operation.type": "process",
      "messaging.operation.name": "run",
      "messaging.destination.name": job.queue,
      "messaging.message.id": String(job.id),
      "punctual.job.id": job.id,
      "punctual.job.task": job.task,
      "punctual.job.queue": job.queue,
      "punctual.job.attempt": job.attempt,
    };
    if (job.key !== null) attributes["punctual.job.key"] = job.key;
    const link = this.linkTo(traceContext);
    if (provider !== this.provider || !this.tracer) {
      this.provider = provider;
      this.tracer = provider.getTracer(TRACER_NAME, this.version);
    }
    const span = this.tracer.startSpan(`punctual.run ${task.name}`, {
      kind: api.SpanKind.CONSUMER,
      root: true,
      attributes,
      links: link ? [link] : undefined,
    });
    try {
      return await api.context.with(api.trace.setSpan(api.ROOT_CONTEXT, span), () => task.run(payload as never, ctx));
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(describeThrown(thrown));
      span.recordException(error);
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message });
      span.setAttribute("error.type", error.name);
      throw thrown;
    } finally {
      span.end();
    }
  }

  /** A link to the stored context, or undefined when there is none or it is not a valid W3C context. */
  private linkTo(stored: unknown): OtelApi.Link | undefined {
    if (typeof stored !== "object" || stored === null) return undefined;
    const { traceparent, tracestate } = stored as Partial<Record<keyof TraceCarrier, unknown>>;
    const match = typeof traceparent === "string" ? TRACEPARENT.exec(traceparent) : null;
    // Version ff is invalid; version 00 has exactly four fields.
    if (!match || match[1] === "ff" || (match[1] === "00" && match[5] !== undefined)) return undefined;
    const context: OtelApi.SpanContext = {
      traceId: match[2]!,
      spanId: match[3]!,
      traceFlags: parseInt(match[4]!, 16),
      isRemote: true,
      traceState: typeof tracestate === "string" && tracestate ? this.api.createTraceState(tracestate) : undefined,
    };
    return this.api.isSpanContextValid(context) ? { context } : undefined;
  }
}
