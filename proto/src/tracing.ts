/**
 * OpenTelemetry tracing, opt-in: on only when OTEL_EXPORTER_OTLP_ENDPOINT is set. This module loads
 * nothing of OpenTelemetry (types only): `startTracing` imports the SDK (./tracing-sdk.js) when the
 * endpoint is set, so a service with tracing off never loads it, and its call sites check
 * `tracer.enabled` before building a span's attributes.
 *
 * Each service has a provider of its own and registers nothing globally: the tracer is passed around,
 * and the active span lives in the tracer's own AsyncLocalStorage (the wallet and the gateway run in
 * one process in the tests, each with its own tracer).
 */
import type { Attributes, Context, Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { answerClass, isErrorCode } from './errors.js';

export type { Attributes as TraceAttributes, Context as TraceContext, Span as TraceSpan } from '@opentelemetry/api';
export type { SpanExporter } from '@opentelemetry/sdk-trace-base';

export const TRACING_VARIABLES = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_SERVICE_NAME'] as const;

export interface TracingConfig {
  /** OTLP/HTTP base URL (`/v1/traces` is appended, as the OTLP spec says); undefined: tracing off. */
  endpoint: string | undefined;
  /** `service.name` of this service's spans. */
  serviceName: string;
}

/**
 * OTEL_EXPORTER_OTLP_ENDPOINT (unset or empty: off) and OTEL_SERVICE_NAME (default: the service's
 * own). Throws an Error naming the variable; the message never echoes a URL's user or password.
 */
export function readTracingConfig(
  env: Readonly<Record<string, string | undefined>>,
  defaultServiceName: string,
): TracingConfig {
  const endpointText = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() ?? '';
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || defaultServiceName;
  if (!/^[\x21-\x7e][\x20-\x7e]{0,254}$/.test(serviceName)) {
    throw new Error('OTEL_SERVICE_NAME must be 1 to 255 printable ASCII characters');
  }
  if (endpointText === '') return { endpoint: undefined, serviceName };
  let url: URL;
  try {
    url = new URL(endpointText);
  } catch {
    throw new Error('OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (e.g. http://otel-collector:4318)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(
      `OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP), got ${url.protocol}//${url.host}`,
    );
  }
  return { endpoint: endpointText, serviceName };
}

/** The OTLP/HTTP traces URL of a base endpoint. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

/** @opentelemetry/api's SpanKind and SpanStatusCode values, restated so that this module loads nothing. */
export const SPAN_KIND = { INTERNAL: 0 as SpanKind, SERVER: 1 as SpanKind, CLIENT: 2 as SpanKind } as const;
const STATUS_ERROR = 2 as SpanStatusCode;

/**
 * Attribute names: OpenTelemetry's semantic conventions where they have one, `phia.*` for ours. Never
 * an amount, a user id, a session id or a key: tx_id and the request kind identify a request.
 */
export const TRACE_ATTR = {
  httpMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpStatus: 'http.response.status_code',
  rpcSystem: 'rpc.system',
  rpcService: 'rpc.service',
  rpcMethod: 'rpc.method',
  grpcStatus: 'rpc.grpc.status_code',
  dbSystem: 'db.system.name',
  dbOperation: 'db.operation.name',
  dbSummary: 'db.query.summary',
  action: 'phia.action',
  txId: 'phia.tx_id',
  errorCode: 'phia.error_code',
  replayed: 'phia.replayed',
  outcome: 'phia.outcome',
  store: 'phia.idempotency.store',
} as const;

/** Where trace context travels: @grpc/grpc-js's Metadata has this shape. */
export interface TraceCarrier {
  get(key: string): (string | Buffer)[];
  set(key: string, value: string): void;
}

export interface PhiaTracer {
  /** False: every method is a no-op; call sites check it before building attributes. */
  readonly enabled: boolean;
  /** The span this async context runs under (see withSpan), if any. */
  active(): Span | undefined;
  /**
   * Starts a span. Parent: `parent` when given (an extracted context), none when null, else the
   * active span (none when there is no active span).
   */
  startSpan(name: string, kind: SpanKind, attributes?: Attributes, parent?: Context | null): Span;
  /** Runs fn with `span` as the active span (its async continuations included). */
  withSpan<T>(span: Span, fn: () => T): T;
  /** Runs fn with no active span: background work started from a request is not part of its trace. */
  withoutSpan<T>(fn: () => T): T;
  /** Writes `span`'s W3C `traceparent` (and `tracestate`) into the carrier. */
  inject(span: Span, carrier: TraceCarrier): void;
  /** The parent context that a carrier's `traceparent` names (an empty context when none or malformed). */
  extract(carrier: TraceCarrier): Context;
  /** Flushes the spans not yet exported and stops; gives up after SHUTDOWN_TIMEOUT_MS. */
  shutdown(): Promise<void>;
}

/** A service's shutdown waits this long at most for the last spans to leave. */
export const SHUTDOWN_TIMEOUT_MS = 2000;

/**
 * Records a request's or a call's error code on its span. The span's status is Error only for a fault
 * (an undecided code: timeout, unavailable, internal; or a code outside the contract's table): a
 * decline such as INSUFFICIENT_FUNDS is an answer, so error rates in a trace view count faults.
 */
export function recordErrorCode(span: Span, code: string): void {
  span.setAttribute(TRACE_ATTR.errorCode, code);
  if (!isErrorCode(code) || answerClass(code) === 'undecided') failSpan(span, code);
}

/** Sets a span's status to Error. */
export function failSpan(span: Span, message: string): void {
  span.setStatus({ code: STATUS_ERROR, message });
}

const NOOP_SPAN: Span = {
  spanContext: () => ({ traceId: '00000000000000000000000000000000', spanId: '0000000000000000', traceFlags: 0 }),
  setAttribute: () => NOOP_SPAN,
  setAttributes: () => NOOP_SPAN,
  addEvent: () => NOOP_SPAN,
  addLink: () => NOOP_SPAN,
  addLinks: () => NOOP_SPAN,
  setStatus: () => NOOP_SPAN,
  updateName: () => NOOP_SPAN,
  end: () => undefined,
  isRecording: () => false,
  recordException: () => undefined,
};

/** Tracing off: nothing recorded, nothing allocated, nothing loaded. */
export const NOOP_TRACER: PhiaTracer = Object.freeze({
  enabled: false,
  active: () => undefined,
  startSpan: () => NOOP_SPAN,
  withSpan: <T>(_span: Span, fn: () => T) => fn(),
  withoutSpan: <T>(fn: () => T) => fn(),
  inject: () => undefined,
  extract: () => ({}) as Context,
  shutdown: async () => undefined,
});

export interface StartTracingOptions {
  /**
   * Tests: spans go to this exporter as each ends (SimpleSpanProcessor) instead of OTLP, and tracing
   * is on whatever the endpoint says.
   */
  exporter?: SpanExporter;
}

/** The service's tracer: the SDK's when the endpoint (or a test exporter) is given, else NOOP_TRACER. */
export async function startTracing(config: TracingConfig, options: StartTracingOptions = {}): Promise<PhiaTracer> {
  if (config.endpoint === undefined && options.exporter === undefined) return NOOP_TRACER;
  const { createSdkTracer } = await import('./tracing-sdk.js');
  return createSdkTracer(config, options.exporter);
}
