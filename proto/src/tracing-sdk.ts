/**
 * The enabled tracer: OpenTelemetry's SDK, loaded by ./tracing.ts only when tracing is on. One
 * provider per service, never registered globally (no global tracer provider, context manager or
 * propagator): the active span is kept in an AsyncLocalStorage of this tracer's own.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ROOT_CONTEXT,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanKind,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { SHUTDOWN_TIMEOUT_MS, tracesUrl, type PhiaTracer, type TraceCarrier, type TracingConfig } from './tracing.js';

const setter: TextMapSetter<TraceCarrier> = {
  set: (carrier, key, value) => carrier.set(key, value),
};
const getter: TextMapGetter<TraceCarrier> = {
  // The propagator asks for traceparent and tracestate only.
  keys: () => ['traceparent', 'tracestate'],
  get: (carrier, key) => {
    const value = carrier.get(key)[0];
    return value === undefined ? undefined : value.toString();
  },
};

/** The tracer of one service; `testExporter` replaces OTLP with a synchronous export per span. */
export async function createSdkTracer(config: TracingConfig, testExporter?: SpanExporter): Promise<PhiaTracer> {
  let processor: SimpleSpanProcessor | BatchSpanProcessor;
  if (testExporter !== undefined) processor = new SimpleSpanProcessor(testExporter);
  else {
    // Loaded here: a test with its own exporter never loads the OTLP one.
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(config.endpoint as string) }));
  }
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName })),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer('phia');
  const propagator = new W3CTraceContextPropagator();
  const store = new AsyncLocalStorage<Span | undefined>();
  let stopping: Promise<void> | undefined;

  return {
    enabled: true,
    active: () => store.getStore(),
    startSpan(name: string, kind: SpanKind, attributes?: Attributes, parent?: Context | null): Span {
      let context = ROOT_CONTEXT;
      if (parent !== undefined && parent !== null) context = parent;
      else if (parent === undefined) {
        const active = store.getStore();
        if (active !== undefined) context = trace.setSpan(ROOT_CONTEXT, active);
      }
      return tracer.startSpan(name, { kind, attributes }, context);
    },
    withSpan: (span, fn) => store.run(span, fn),
    withoutSpan: (fn) => store.run(undefined, fn),
    inject(span, carrier) {
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    },
    extract: (carrier) => propagator.extract(ROOT_CONTEXT, carrier, getter),
    shutdown() {
      // A collector that does not answer must not hold the service's exit: 2 s at most.
      stopping ??= Promise.race([
        provider.shutdown().catch(() => undefined),
        sleep(SHUTDOWN_TIMEOUT_MS, undefined, { ref: false }),
      ]);
      return stopping;
    },
  };
}
