/**
 * `app.tracer`: OpenTelemetry, on when OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test gives an
 * exporter); flushed, 2 s at most, when the app closes. Registered first among the app's plugins, so
 * the other plugins get the tracer and it closes last.
 *
 * With tracing on, every PHIA request gets a server span: started on arrival, the active span while
 * its handler runs (the idempotency store's and the wallet client's spans are its children), ended
 * with its action, tx_id, status and error code. With tracing off this plugin adds no hook at all.
 * An incoming `traceparent` is not honoured: PHIA is an outside caller, so each request is a root.
 */
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { recordErrorCode, SPAN_KIND, startTracing, TRACE_ATTR, type PhiaTracer, type TraceSpan } from '@phia/proto';
import { routeConfig } from '../../route-config.js';
import type { AppOptions } from './options.js';

declare module 'fastify' {
  interface FastifyInstance {
    tracer: PhiaTracer;
  }
  interface FastifyRequest {
    /** The PHIA request's server span; null for other routes. Decorated only while tracing is on. */
    traceSpan: TraceSpan | null;
  }
}

export default fp<AppOptions>(
  async (app, { config, spanExporter }) => {
    const tracer = await startTracing(config.tracing, spanExporter === undefined ? {} : { exporter: spanExporter });
    app.decorate('tracer', tracer);
    app.addHook('onClose', async () => tracer.shutdown());
    if (!tracer.enabled) return;

    app.decorateRequest('traceSpan', null);
    app.addHook('onRequest', (request, _reply, done) => {
      const route = routeConfig(request);
      if (route.phia !== true) return done();
      const path = request.routeOptions.url ?? request.url;
      request.traceSpan = tracer.startSpan(
        `POST ${path}`,
        SPAN_KIND.SERVER,
        {
          [TRACE_ATTR.httpMethod]: request.method,
          [TRACE_ATTR.httpRoute]: path,
          ...(route.action === undefined ? {} : { [TRACE_ATTR.action]: route.action }),
        },
        null,
      );
      done();
    });
    // The handler runs inside the span: what it awaits (Redis, the wallet) finds it as the parent.
    app.addHook('preHandler', (request, _reply, done) => {
      const span = request.traceSpan;
      if (span === null) return done();
      tracer.withSpan(span, done);
    });
    app.addHook('onResponse', (request, reply, done) => {
      endSpan(request, reply.statusCode);
      done();
    });
    app.addHook('onRequestAbort', (request, done) => {
      endSpan(request, undefined);
      done();
    });
  },
  { name: 'tracing' },
);

/** Ends a PHIA request's span with what the requests plugin logs of it; status undefined: the client left. */
function endSpan(request: FastifyRequest, status: number | undefined): void {
  const span = request.traceSpan;
  if (span === null) return;
  request.traceSpan = null;
  const info = request.phia;
  const action = info?.action ?? routeConfig(request).action;
  if (action !== undefined) span.setAttribute(TRACE_ATTR.action, action);
  if (info?.tx_id !== undefined) span.setAttribute(TRACE_ATTR.txId, info.tx_id);
  if (info?.replayed === true) span.setAttribute(TRACE_ATTR.replayed, true);
  if (status !== undefined) span.setAttribute(TRACE_ATTR.httpStatus, status);
  const code = info?.code ?? (status === 200 ? 'ok' : status === undefined ? 'CLIENT_GONE' : 'unknown');
  if (code !== 'ok') recordErrorCode(span, code);
  span.end();
}
