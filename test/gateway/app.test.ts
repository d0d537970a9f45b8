/**
 * The app around the PHIA routes: health, readiness, metrics, request ids, HTTPS with certificate
 * reload, and server.ts as a real process (start from the environment, dev key, SIGTERM, bad config).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { signBody } from '../../gateway/src/auth/signature.js';
import { startGateway } from '../../gateway/src/server.js';
import { json, post, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_app' });
t.teardown(() => stack.close());

t.test('healthz, readyz', async (t) => {
  const health = await stack.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
  t.same(json(health), { status: 'ok' });
  const ready = await stack.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200);
  t.same(json(ready), { status: 'ready', wallet: 'ok', redis: 'ok', pending_voids: 0 });
});

t.test('metrics: requests, latency, replays, lock waits, wallet calls and errors, pending voids', async (t) => {
  const user = uid('metrics');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '1' });
  await stack.post('/phia/bet', bet);
  await stack.post('/phia/bet', bet);
  await stack.post('/phia/bet', moneyBody({ user_id: user, amount: '100' }));
  await stack.post('/phia/balance', { user_id: user, currency: 'USD' }, { key: null });
  const res = await stack.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  const text = res.body;
  t.match(text, /phia_requests_total\{action="bet",status="200",code="ok"\} 2/);
  t.match(text, /phia_requests_total\{action="bet",status="402",code="INSUFFICIENT_FUNDS"\} 1/);
  t.match(text, /phia_requests_total\{action="balance",status="401",code="INVALID_SIGNATURE"\} 1/);
  t.match(text, /phia_request_duration_seconds_count\{action="bet"\} 3/);
  t.match(text, /phia_idempotent_replays_total\{action="bet"\} 1/);
  t.match(text, /# TYPE phia_idempotency_lock_waits_total counter/);
  t.match(text, /phia_wallet_call_duration_seconds_count\{method="Bet",outcome="ok"\} 1/);
  t.match(text, /phia_wallet_call_errors_total\{method="Bet",code="INSUFFICIENT_FUNDS"\} 1/);
  t.match(text, /phia_pending_voids\{backend="redis"\} 0/);
  t.match(text, /phia_pending_voids\{backend="memory"\} 0/);
  t.match(text, /# TYPE phia_voids_enqueued_total counter/);
});

t.test('request ids: taken from x-request-id when sane, generated otherwise', async (t) => {
  const given = await stack.post(
    '/phia/balance',
    { user_id: 'x', currency: 'USD' },
    { headers: { 'x-request-id': 'abc-1' } },
  );
  t.equal(given.headers['x-request-id'], 'abc-1');
  const generated = await stack.post('/phia/balance', { user_id: 'x', currency: 'USD' });
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  const hostile = await stack.post(
    '/phia/balance',
    { user_id: 'x', currency: 'USD' },
    { headers: { 'x-request-id': 'a b\tc' + 'x'.repeat(200) } },
  );
  t.match(hostile.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'replaced');
});

t.test('HTTPS, and SIGHUP-style certificate reload', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const makeCert = (cn: string) =>
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        `/CN=${cn}`,
      ],
      { stdio: 'ignore' },
    );
  makeCert('first');
  const gateway = await startGateway({
    config: { ...stack.config, host: '127.0.0.1', port: 0, tlsCertFile: cert, tlsKeyFile: key },
    keyPrefix: stack.keyPrefix,
    logger: (await import('../../gateway/src/test-helpers/index.js')).quietLogger(),
    defaultMetrics: false,
  });
  t.teardown(() => gateway.close());
  t.match(gateway.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const peerName = () =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: gateway.port, rejectUnauthorized: false }, () => {
        const name = socket.getPeerCertificate().subject?.CN;
        socket.end();
        resolve(String(name));
      });
      socket.on('error', reject);
    });
  t.equal(await peerName(), 'first');
  makeCert('second');
  t.equal(gateway.reloadTls(), true);
  t.equal(await peerName(), 'second', 'new connections get the new certificate');
});

const SERVER = fileURLToPath(new URL('../../gateway/src/server.ts', import.meta.url));

function runServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

t.test('server.ts: starts from the environment, prints the dev key, closes on SIGTERM', async (t) => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = runServer({
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    WALLET_ADDR: stack.wallet.address,
    LOG_LEVEL: 'info',
  });
  t.teardown(() => server.child.kill('SIGKILL'));
  let up = false;
  for (let i = 0; i < 200 && !up; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    up = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (res) => res.ok,
      () => false,
    );
  }
  t.ok(up, 'listening');
  const key = /generated development key ([0-9a-f]{64})/.exec(server.output())?.[1];
  t.ok(key, 'the dev key was printed');
  const user = uid('proc');
  await stack.fund(user, 'USD', '3');
  const body = JSON.stringify({ user_id: user, currency: 'USD' });
  const res = await fetch(`http://127.0.0.1:${port}/phia/balance`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-sign': signBody(key ?? '', body) },
    body,
  });
  t.equal(res.status, 200);
  t.same(await res.json(), { balance: '3.00', currency: 'USD' });
  const logged = server.output();
  t.notMatch(
    logged
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .join('\n'),
    key ?? 'none',
    'not in the JSON logs',
  );
  server.child.kill('SIGTERM');
  t.equal(await server.exited, 0, 'clean exit on SIGTERM');
});

t.test('server.ts: a bad configuration stops it with every problem listed', async (t) => {
  const server = runServer({ NODE_ENV: 'production', GATEWAY_PORT: 'x' });
  const code = await server.exited;
  t.equal(code, 78);
  t.match(server.output(), /invalid gateway configuration/);
  t.match(server.output(), /GATEWAY_PORT must be an integer/);
  t.match(server.output(), /PHIA_SIGNING_KEYS is required in production/);
  t.match(server.output(), /PHIA_ALLOWED_IPS is required in production/);
});

t.test('closing the app closes its resources and keeps answering in-flight requests', async (t) => {
  const app = await stack.newApp();
  const user = uid('closing');
  await stack.fund(user, 'USD', '5');
  // The bet waits in the wallet on the account row lock while the app closes.
  const holder = await stack.schema.pool.connect();
  await holder.query('BEGIN');
  await holder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 FOR UPDATE`, [user]);
  const inflight = post(app, '/phia/bet', moneyBody({ user_id: user, amount: '1' }));
  await new Promise((resolve) => setTimeout(resolve, 100));
  let closed = false;
  const closing = app.close().then(() => (closed = true));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(closed, false, 'close waits for the in-flight request');
  await holder.query('ROLLBACK');
  holder.release();
  const res = await inflight;
  await closing;
  t.equal(res.statusCode, 200, `the in-flight bet was answered before the wallet client closed (${res.body})`);
  t.equal(await stack.balance(user, 'USD'), '4.00');
  t.equal(await app.store.ping(), false, 'its Redis connection is closed');
  t.equal(await app.wallet.ping(100), false, 'its wallet client is closed');
});
