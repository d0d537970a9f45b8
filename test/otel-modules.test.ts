/**
 * Tracing off costs nothing: with OTEL_EXPORTER_OTLP_ENDPOINT unset, the wallet and the gateway start,
 * serve a bet and close without loading OpenTelemetry's SDK (only the API, which prom-client loads on
 * its own). With it set (a collector stub here), the same run loads the SDK and both services' spans
 * reach the collector.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { createTestSchema } from './helpers/postgres.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURE = join(ROOT, 'test/fixtures/otel-modules.mjs');
const KEY = 'otel-modules-key-0123456789abcdef';
t.setTimeout(120_000);

const schema = await createTestSchema('otel_modules');
t.teardown(() => schema.drop());

/** Runs the fixture (asynchronously: the collector stub answers from this process meanwhile). */
async function run(extra: Record<string, string>): Promise<{ status: number; opentelemetry: string[] }> {
  const { stdout } = await promisify(execFile)(process.execPath, [FIXTURE], {
    cwd: ROOT,
    timeout: 60_000,
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: schema.databaseUrl,
      DATABASE_SCHEMA: schema.schema,
      WALLET_HOST: '127.0.0.1',
      WALLET_PORT: '0',
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      PHIA_SIGNING_KEYS: KEY,
      PHIA_ALLOWED_IPS: '127.0.0.1,::1',
      LOG_LEVEL: 'silent',
      ...extra,
    },
  });
  return JSON.parse(stdout.trim().split('\n').pop() as string) as { status: number; opentelemetry: string[] };
}

t.test('tracing off: a bet end to end loads no OpenTelemetry SDK module', async (t) => {
  const result = await run({});
  t.equal(result.status, 404, 'the bet went through the gateway to the wallet (an unknown account)');
  // prom-client requires @opentelemetry/api itself (processCpuTotal, for exemplars): the API only,
  // a few no-op objects. Nothing else of OpenTelemetry may load.
  t.same(
    result.opentelemetry.filter((name) => name !== '@opentelemetry/api'),
    [],
    'no SDK, exporter, resources, core or semantic-conventions module loaded',
  );
});

t.test('tracing on: the SDK is loaded, and both services export their spans', async (t) => {
  const bodies: string[] = [];
  const collector = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      bodies.push(`${request.method} ${request.url} ${body}`);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  t.teardown(() => collector.close());
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

  const result = await run({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
  t.equal(result.status, 404);
  for (const name of ['@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-http']) {
    t.ok(result.opentelemetry.includes(name), `${name} loaded (the check sees what is loaded)`);
  }
  t.ok(
    bodies.every((body) => body.startsWith('POST /v1/traces ')),
    'OTLP/HTTP posts to /v1/traces',
  );
  t.ok(
    bodies.some((body) => body.includes('phia-gateway')),
    "the gateway's spans, flushed at close",
  );
  t.ok(
    bodies.some((body) => body.includes('phia-wallet')),
    "the wallet's spans, flushed at close",
  );
});
