/**
 * The precomputed security headers are helmet's defaults, and they are on every answer: success,
 * error, not found.
 */
import t from 'tap';
import Fastify from 'fastify';
import helmet from '@fastify/helmet';
import { installSecurityHeaders, SECURITY_HEADERS } from './security-headers.js';

const OWN = new Set(['content-type', 'content-length', 'date', 'connection', 'x-request-id']);
const securityHeaders = (headers: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !OWN.has(name)));

t.test("SECURITY_HEADERS are @fastify/helmet's defaults", async (t) => {
  const app = Fastify();
  t.teardown(() => app.close());
  await app.register(helmet, { global: true });
  app.get('/', async () => ({ ok: true }));
  const res = await app.inject({ method: 'GET', url: '/' });
  t.same(securityHeaders(res.headers), SECURITY_HEADERS);
});

t.test('installSecurityHeaders: on answers, errors and 404s, with x-request-id', async (t) => {
  const app = Fastify({ genReqId: () => 'req-1' });
  t.teardown(() => app.close());
  installSecurityHeaders(app);
  app.get('/ok', async () => ({ ok: true }));
  app.get('/fail', async () => {
    throw Object.assign(new Error('refused'), { statusCode: 401 });
  });
  for (const [url, status] of [
    ['/ok', 200],
    ['/fail', 401],
    ['/missing', 404],
  ] as const) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, status, url);
    t.same(securityHeaders(res.headers), SECURITY_HEADERS, `${url}: security headers`);
    t.equal(res.headers['x-request-id'], 'req-1', `${url}: request id`);
  }
});
