import fastifyHelmet from '@fastify/helmet';
import Fastify from 'fastify';
import { test } from 'tap';
import helmetPlugin, { helmetHeaders } from './helmet.js';

async function headersOf(register: (app: ReturnType<typeof Fastify>) => Promise<unknown>, url = '/') {
  const app = Fastify();
  await register(app);
  app.get('/', async () => ({ ok: true }));
  const res = await app.inject({ method: 'GET', url });
  await app.close();
  return res.headers;
}

test('every answer carries the same security headers as @fastify/helmet with its defaults', async (t) => {
  const theirs = await headersOf((app) => app.register(fastifyHelmet, { global: true }));
  const ours = await headersOf((app) => app.register(helmetPlugin));
  const expected = helmetHeaders();
  t.ok(Object.keys(expected).length >= 10, 'helmet sets its default headers');
  t.match(expected['content-security-policy'], /default-src 'self'/, 'the default policy');
  for (const name of Object.keys(expected)) {
    t.equal(ours[name], theirs[name], `${name} as @fastify/helmet sets it`);
  }
  for (const name of Object.keys(theirs)) {
    if (name.startsWith('x-') || name.includes('polic') || name.includes('origin') || name.includes('security')) {
      t.equal(ours[name], theirs[name], `nothing @fastify/helmet sets is missing: ${name}`);
    }
  }
  t.equal(ours['x-powered-by'], undefined, 'no x-powered-by');
});

test('unmatched routes get the headers too', async (t) => {
  const headers = await headersOf((app) => app.register(helmetPlugin), '/nowhere');
  t.equal(headers['x-content-type-options'], 'nosniff');
  t.ok(headers['content-security-policy']);
});

test('options reach helmet: a header turned off is not set', async (t) => {
  const headers = helmetHeaders({ contentSecurityPolicy: false, xFrameOptions: { action: 'deny' } });
  t.equal(headers['content-security-policy'], undefined);
  t.equal(headers['x-frame-options'], 'DENY');
});

test("a bad option fails at start-up with helmet's message", async (t) => {
  t.throws(() => helmetHeaders({ referrerPolicy: { policy: 'nonsense' as never } }), /referrer/i);
});
