/**
 * The gateway's operational answers against the real wallet and Redis: readiness asks the wallet's
 * own health `Check` (not the channel's state), and pending voids are counted by backend, so that a
 * dashboard over several gateways can take the shared Redis outbox once and add each one's memory.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { startWalletServer } from '../../wallet-service/src/index.js';
import { buildApp } from '../../gateway/src/app.js';
import { json, quietLogger, testConfig, uid } from '../../gateway/src/test-helpers/index.js';
import { freePort } from '../chaos/processes.js';
import { startStack, until } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_ops' });
t.teardown(() => stack.close());

t.test('readyz: 503 while the wallet listens but its database is not ready, 200 once it serves', async (t) => {
  // A "database" that accepts connections and never answers: the wallet listens, health NOT_SERVING,
  // every call UNAVAILABLE, until its pool gives up.
  const held: Socket[] = [];
  const blackHole = createServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    blackHole.close();
  });
  const dbPort = (blackHole.address() as { port: number }).port;
  const walletPort = await freePort();
  const starting = startWalletServer({
    host: '127.0.0.1',
    port: walletPort,
    databaseUrl: `postgres://postgres@127.0.0.1:${dbPort}/test`,
    schema: 'never_ready',
  }).then(
    (wallet) => wallet.close(),
    () => undefined,
  );
  const app = await buildApp({
    config: testConfig({ WALLET_ADDR: `127.0.0.1:${walletPort}` }),
    logger: quietLogger(),
    redis: null,
    defaultMetrics: false,
  });
  t.teardown(() => app.close());
  t.ok(await until(() => app.wallet.ping(200), 2000), 'the wallet port accepts connections');
  const starting503 = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(starting503.statusCode, 503);
  t.same(json(starting503), { status: 'unavailable', wallet: 'not_serving', redis: 'disabled', pending_voids: 0 });
  for (const socket of held) socket.destroy();
  await starting;

  const ready = await stack.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200, 'the stack wallet serves');
  t.equal(json(ready).wallet, 'ok');
});

t.test('readyz: 503 "down" when nothing listens at the wallet address', async (t) => {
  const app = await buildApp({
    config: testConfig({ WALLET_ADDR: `127.0.0.1:${await freePort()}` }),
    logger: quietLogger(),
    redis: null,
    defaultMetrics: false,
  });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 503);
  t.same(json(res), { status: 'unavailable', wallet: 'down', redis: 'disabled', pending_voids: 0 });
});

t.test('phia_pending_voids: the shared Redis outbox under backend="redis" on every gateway', async (t) => {
  const second = await stack.newApp();
  const gauge = async (app: typeof second) => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const value = (backend: string) =>
      Number(new RegExp(`^phia_pending_voids\\{backend="${backend}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { redis: value('redis'), memory: value('memory') };
  };
  t.same(await gauge(stack.app), { redis: 0, memory: 0 });

  // Undeliverable while the wallet is away: the void stays in the Redis outbox.
  await stack.stopWallet();
  t.teardown(() => stack.startWallet());
  const where = await stack.app.voids.enqueue({
    kind: 'bet',
    tx_id: uid('void'),
    error_code: 'WALLET_TIMEOUT',
    fingerprint: 'f'.repeat(64),
    attempt_id: randomUUID(),
  });
  t.equal(where, 'durable');
  t.same(await gauge(stack.app), { redis: 1, memory: 0 }, 'the gateway that queued it');
  t.same(await gauge(second), { redis: 1, memory: 0 }, 'another gateway sees the same outbox: max, not sum');
  const ready = json(await second.inject({ method: 'GET', url: '/readyz' }));
  t.equal(ready.pending_voids, 1);

  await stack.startWallet();
  t.ok(await until(async () => (await gauge(second)).redis === 0, 10_000), 'delivered once the wallet is back');
});

t.test('the dashboard counts the Redis outbox once (max across gateways) and adds each memory outbox', async (t) => {
  const dashboard = JSON.parse(
    readFileSync(new URL('../../ops/grafana/dashboards/phia.json', import.meta.url), 'utf8'),
  ) as { panels: { targets?: { expr: string }[] }[] };
  const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).map((target) => target.expr);
  const pending = exprs.filter((expr) => expr.includes('phia_pending_voids'));
  t.ok(pending.length >= 2, 'the total and the time series');
  for (const expr of pending) {
    for (const use of expr.matchAll(/(\w+)(?: by \([^)]*\))? \(phia_pending_voids(\{[^}]*\})?\)/g)) {
      const [, fn, selector] = use;
      if (selector === '{backend="redis"}') t.equal(fn, 'max', `${expr}: the shared count is taken once`);
      else t.equal(selector, '{backend="memory"}', `${expr}: only memory outboxes are added`);
    }
  }
  t.ok(
    pending.some((expr) =>
      /max\(phia_pending_voids\{backend="redis"\}\).*\+.*sum\(phia_pending_voids\{backend="memory"\}\)/.test(expr),
    ),
    'the total: max of redis + sum of memory',
  );
});
