import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metadata } from '@grpc/grpc-js';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import t from 'tap';
import { NOOP_TRACER, readTracingConfig, recordErrorCode, SPAN_KIND, startTracing, tracesUrl } from './tracing.js';

t.test('config: off unless the endpoint is set; service name defaults per service', async (t) => {
  t.same(readTracingConfig({}, 'phia-gateway'), { endpoint: undefined, serviceName: 'phia-gateway' });
  t.same(readTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }, 'phia-wallet'), {
    endpoint: undefined,
    serviceName: 'phia-wallet',
  });
  t.same(readTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ', OTEL_SERVICE_NAME: '' }, 'phia-wallet'), {
    endpoint: undefined,
    serviceName: 'phia-wallet',
  });
  t.same(
    readTracingConfig(
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example:4318', OTEL_SERVICE_NAME: 'gw-eu-1' },
      'phia-gateway',
    ),
    { endpoint: 'https://otel.example:4318', serviceName: 'gw-eu-1' },
  );
  t.equal(tracesUrl('http://collector:4318'), 'http://collector:4318/v1/traces');
  t.equal(tracesUrl('http://collector:4318/otlp/'), 'http://collector:4318/otlp/v1/traces');
});

t.test('config: a bad endpoint or service name is refused with the variable named', async (t) => {
  const read = (env: Record<string, string>) => () => readTracingConfig(env, 'phia-gateway');
  t.throws(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /OTEL_EXPORTER_OTLP_ENDPOINT must be an http/);
  t.throws(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }), /OTEL_EXPORTER_OTLP_ENDPOINT must be an http/);
  t.throws(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' }), /got grpc:\/\/collector:4317/);
  t.throws(read({ OTEL_SERVICE_NAME: 'gateway\n1' }), /OTEL_SERVICE_NAME must be/);
  // A URL's credentials never reach the message (it is printed at start-up).
  const error = t.throws(read({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:s3cret@collector/' })) as Error;
  t.notMatch(error.message, /s3cret|user/);
});

t.test('off: the no-op tracer, and nothing of OpenTelemetry to start', async (t) => {
  const tracer = await startTracing({ endpoint: undefined, serviceName: 'phia-gateway' });
  t.equal(tracer, NOOP_TRACER);
  t.equal(tracer.enabled, false);
  const span = tracer.startSpan('x', SPAN_KIND.SERVER);
  t.equal(span.isRecording(), false);
  t.equal(
    tracer.withSpan(span, () => tracer.active()),
    undefined,
    'no active span',
  );
  const metadata = new Metadata();
  tracer.inject(span, metadata);
  t.same(metadata.getMap(), {}, 'nothing injected');
  await tracer.shutdown();
});

t.test('on: W3C trace context round trip through gRPC metadata, parent links kept', async (t) => {
  const exporter = new InMemorySpanExporter();
  const tracer = await startTracing({ endpoint: undefined, serviceName: 'phia-test' }, { exporter });
  t.teardown(() => tracer.shutdown());
  t.equal(tracer.enabled, true);

  const root = tracer.startSpan('request', SPAN_KIND.SERVER, { 'phia.tx_id': 'tx-1' });
  const metadata = new Metadata();
  tracer.withSpan(root, () => {
    t.equal(tracer.active(), root, 'active inside withSpan');
    const client = tracer.startSpan('call', SPAN_KIND.CLIENT);
    tracer.inject(client, metadata);
    client.end();
    t.equal(
      tracer.withoutSpan(() => tracer.active()),
      undefined,
      'none inside withoutSpan',
    );
  });
  t.equal(tracer.active(), undefined, 'none outside');
  root.end();
  const [traceparent] = metadata.get('traceparent');
  t.match(String(traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

  // The other side: a span whose parent is the extracted context.
  const server = tracer.startSpan('server', SPAN_KIND.SERVER, {}, tracer.extract(metadata));
  server.end();
  const [client, request, remote] = exporter.getFinishedSpans();
  t.equal(client?.name, 'call');
  t.equal(request?.name, 'request');
  t.equal(remote?.name, 'server');
  const traceId = request?.spanContext().traceId;
  t.equal(client?.spanContext().traceId, traceId, 'one trace');
  t.equal(remote?.spanContext().traceId, traceId, 'one trace across the metadata');
  t.equal(client?.parentSpanContext?.spanId, request?.spanContext().spanId, 'client under the request');
  t.equal(remote?.parentSpanContext?.spanId, client?.spanContext().spanId, 'server under the client');
  t.equal(remote?.parentSpanContext?.isRemote, true, 'the parent came from the metadata');
  t.equal(request?.parentSpanContext, undefined, 'the request is a root');
  t.equal(request?.resource.attributes['service.name'], 'phia-test');
  t.equal(request?.attributes['phia.tx_id'], 'tx-1');
});

t.test('on: tracestate travels on; a malformed traceparent starts a new trace', async (t) => {
  const exporter = new InMemorySpanExporter();
  const tracer = await startTracing({ endpoint: undefined, serviceName: 'phia-test' }, { exporter });
  t.teardown(() => tracer.shutdown());
  const incoming = new Metadata();
  incoming.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  incoming.set('tracestate', 'vendor=abc');
  const span = tracer.startSpan('server', SPAN_KIND.SERVER, {}, tracer.extract(incoming));
  const outgoing = new Metadata();
  tracer.inject(span, outgoing);
  t.match(String(outgoing.get('traceparent')[0]), /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  t.equal(String(outgoing.get('tracestate')[0]), 'vendor=abc');
  span.end();

  const bad = new Metadata();
  bad.set('traceparent', 'garbage');
  const context = tracer.extract(bad);
  t.equal(trace.getSpanContext(context), undefined, 'nothing extracted');
  const fresh = tracer.startSpan('server', SPAN_KIND.SERVER, {}, context);
  t.not(fresh.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
  fresh.end();
});

/** A collector stub: records each POST's path, answers `answer` (or never, when false). */
async function collector(answer: boolean): Promise<{ server: Server; url: string; posts: string[] }> {
  const posts: string[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    request.resume();
    request.on('end', () => {
      posts.push(`${request.method} ${request.url}`);
      if (answer) response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, posts };
}

t.test('on with an endpoint: spans are batched to OTLP/HTTP and flushed by shutdown', async (t) => {
  const stub = await collector(true);
  t.teardown(() => stub.server.close());
  const tracer = await startTracing({ endpoint: stub.url, serviceName: 'phia-test' });
  tracer.startSpan('request', SPAN_KIND.SERVER).end();
  t.same(stub.posts, [], 'batched, not sent per span');
  await tracer.shutdown();
  t.same(stub.posts, ['POST /v1/traces'], 'flushed at shutdown');
});

t.test('shutdown gives up on a collector that never answers', async (t) => {
  const stub = await collector(false);
  t.teardown(() => {
    stub.server.closeAllConnections();
    stub.server.close();
  });
  const tracer = await startTracing({ endpoint: stub.url, serviceName: 'phia-test' });
  tracer.startSpan('request', SPAN_KIND.SERVER).end();
  await tracer.shutdown();
  t.pass('shutdown returned although the export is still waiting');
});

t.test('error codes: a decline is recorded, only a fault marks the span failed', async (t) => {
  const exporter = new InMemorySpanExporter();
  const tracer = await startTracing({ endpoint: undefined, serviceName: 'phia-test' }, { exporter });
  t.teardown(() => tracer.shutdown());
  for (const code of ['INSUFFICIENT_FUNDS', 'IDEMPOTENCY_MISMATCH', 'WALLET_TIMEOUT', 'INTERNAL', 'CLIENT_GONE']) {
    const span = tracer.startSpan(code, SPAN_KIND.SERVER);
    recordErrorCode(span, code);
    span.end();
  }
  const statuses = Object.fromEntries(
    exporter.getFinishedSpans().map((span) => [span.attributes['phia.error_code'], span.status.code]),
  );
  t.same(statuses, {
    INSUFFICIENT_FUNDS: SpanStatusCode.UNSET,
    IDEMPOTENCY_MISMATCH: SpanStatusCode.UNSET,
    WALLET_TIMEOUT: SpanStatusCode.ERROR,
    INTERNAL: SpanStatusCode.ERROR,
    CLIENT_GONE: SpanStatusCode.ERROR,
  });
});
