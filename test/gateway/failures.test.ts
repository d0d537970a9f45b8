/**
 * Contract rule 5 ("an error answer is final") and the wallet failure rows of section 5, against
 * the real wallet and real Redis: wallet stopped (503 fast, no hang), a wallet slower than the
 * deadline (504), a wallet that accepts connections but never answers, voids queued before the
 * answer and delivered once the wallet is back (also by another gateway after a restart), and the
 * money never moving for a request answered with an error.
 */
import t from 'tap';
import { createServer } from 'node:net';
import { expectError, json, post, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack, until, waitForAppRedis, holdAccount } from '../helpers/gateway-stack.js';
import type { FastifyInstance } from 'fastify';

const stack = await startStack({ label: 'gw_fail', env: { WALLET_DEADLINE_MS: '300' } });
t.teardown(() => stack.close());

async function pendingVoids(app: FastifyInstance): Promise<number> {
  return app.voids.pendingCount();
}

async function stored(kind: string, txId: string): Promise<Record<string, string>> {
  return stack.admin.GetTransaction({ kind, tx_id: txId });
}

t.test('a wallet slower than the deadline: 504, void queued, the bet never applies, also after recovery', async (t) => {
  const user = uid('slow');
  await stack.fund(user, 'USD', '50');
  const bet = moneyBody({ user_id: user, amount: '10' });
  const lock = await holdAccount(stack, user);
  const started = Date.now();
  const res = await stack.post('/phia/bet', bet);
  const took = Date.now() - started;
  expectError(t, res, 504, 'WALLET_TIMEOUT', 'timeout');
  // The wallet gives up a reserve before the gateway's deadline, so the answer may come before 300 ms.
  t.ok(took < 1500, `answered by the deadline, no hang: ${took} ms`);
  const win = moneyBody({ user_id: user, amount: '5' });
  expectError(t, await stack.post('/phia/win', win), 504, 'WALLET_TIMEOUT', 'timeout', 'a slow win');

  // Keep the wallet slow well past the deadline, then let it recover.
  await new Promise((resolve) => setTimeout(resolve, 700));
  await lock.release();
  t.ok(await until(async () => (await pendingVoids(stack.app)) === 0, 5000), 'voids delivered');
  t.match(await stored('bet', bet.tx_id as string), { status: 'voided', error_code: 'WALLET_TIMEOUT' });
  t.match(await stored('win', win.tx_id as string), { status: 'voided' });
  t.equal(await stack.balance(user, 'USD'), '50.00', 'neither the bet nor the win applied');

  // Duplicates: the cached answer, then (Redis forgot) the wallet's record: still 504, still no debit.
  const replay = await stack.post('/phia/bet', bet);
  t.equal(replay.body, res.body);
  t.equal(replay.statusCode, 504);
  const amnesic = await stack.newApp({ keyPrefix: `${stack.keyPrefix}amnesic:` });
  expectError(
    t,
    await post(amnesic, '/phia/bet', bet),
    504,
    'WALLET_TIMEOUT',
    'timeout',
    'duplicate after Redis forgot',
  );
  t.equal(await stack.balance(user, 'USD'), '50.00');
  const metrics = await stack.app.inject({ method: 'GET', url: '/metrics' });
  t.match(metrics.body, /phia_wallet_call_errors_total\{method="Bet",code="WALLET_TIMEOUT"\} [1-9]/);
});

t.test(
  "wallet stopped: 503 within PHIA's 6 s (balance at once); the void waits in Redis, delivered after the restart",
  async (t) => {
    const user = uid('down');
    await stack.fund(user, 'USD', '30');
    await stack.stopWallet();
    t.teardown(() => stack.startWallet());

    const started = Date.now();
    const balance = await stack.post('/phia/balance', { user_id: user, currency: 'USD' });
    expectError(t, balance, 503, 'WALLET_UNAVAILABLE', 'unavailable', 'balance');
    t.ok(Date.now() - started < 1000, `balance answered in ${Date.now() - started} ms`);
    const bet = moneyBody({ user_id: user, amount: '7' });
    const refund = moneyBody({ user_id: user, amount: '1', bet_tx_id: uid('nobet') });
    // S: each money request tries to settle with the ledger until arrival + 5.25 s.
    const [betAnswer, refundAnswer] = await Promise.all([
      stack.post('/phia/bet', bet),
      stack.post('/phia', { action: 'refund', ...refund }),
    ]);
    expectError(t, betAnswer, 503, 'WALLET_UNAVAILABLE', 'unavailable', 'bet');
    expectError(t, refundAnswer, 503, 'WALLET_UNAVAILABLE', 'unavailable', 'refund');
    const took = Date.now() - started;
    t.ok(took < 6000, `answered within PHIA's budget: ${took} ms`);

    t.equal(await stack.redis?.zcard(`${stack.keyPrefix}voids`), 2, 'both voids are in the durable queue');
    const ready = await stack.app.inject({ method: 'GET', url: '/readyz' });
    t.equal(ready.statusCode, 503);
    t.match(json(ready), { status: 'unavailable', wallet: 'down', redis: 'ok', pending_voids: 2 });
    t.equal((await stack.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the gateway is up');

    // The gateway restarts while the wallet is still down; the next one delivers the voids.
    await stack.app.close();
    await stack.startWallet();
    const next = await stack.newApp();
    await waitForAppRedis(next);
    t.ok(await until(async () => (await pendingVoids(next)) === 0, 5000), 'delivered by the restarted gateway');
    t.match(await stored('bet', bet.tx_id as string), { status: 'voided', error_code: 'WALLET_UNAVAILABLE' });
    t.match(await stored('refund', refund.tx_id as string), { status: 'voided' });
    // PHIA was told 503: the bet must never apply, even if it arrives again.
    const again = await post(next, '/phia/bet', bet);
    t.equal(again.statusCode, 503, 'replayed refusal');
    const amnesic = await stack.newApp({ keyPrefix: `${stack.keyPrefix}amnesic2:` });
    expectError(t, await post(amnesic, '/phia/bet', bet), 503, 'WALLET_UNAVAILABLE', 'unavailable', 'from the ledger');
    t.equal(await stack.balance(user, 'USD'), '30.00');
    t.equal((await post(next, '/phia/balance', { user_id: user, currency: 'USD' })).statusCode, 200, 'back to normal');
    // Later tests use the restarted gateway as the stack's app.
    Object.assign(stack, { app: next });
  },
);

t.test('a void never reverses a different request stored under the same tx_id', async (t) => {
  const user = uid('notmatch');
  await stack.fund(user, 'USD', '20');
  // The stack's 300 ms deadline is for the slow-wallet tests; this first bet must apply, also on a loaded machine.
  const app = await stack.newApp({ redis: null }, { WALLET_DEADLINE_MS: '2000' });
  const first = moneyBody({ user_id: user, amount: '2' });
  t.equal((await post(app, '/phia/bet', first)).statusCode, 200);
  // Another gateway (no shared store) gets other content under the same tx_id while the wallet is down.
  const other = await stack.newApp({ redis: null });
  await stack.stopWallet();
  expectError(t, await post(other, '/phia/bet', { ...first, amount: '3' }), 503, 'WALLET_UNAVAILABLE', 'unavailable');
  t.equal(await pendingVoids(other), 1);
  await stack.startWallet();
  t.ok(await until(async () => (await pendingVoids(other)) === 0, 5000), 'void delivered');
  t.match(await stored('bet', first.tx_id as string), { status: 'applied' });
  t.equal(await stack.balance(user, 'USD'), '18.00', 'the first bet stands');
});

t.test("a wallet that accepts connections but never answers: an error within PHIA's 6 s, void queued", async (t) => {
  const sockets = new Set<import('node:net').Socket>();
  const blackHole = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => blackHole.close(() => resolve()));
  });
  const address = blackHole.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const app = await stack.newApp({}, { WALLET_ADDR: `127.0.0.1:${port}` });
  await waitForAppRedis(app);
  const started = Date.now();
  const bet = moneyBody({ user_id: uid('hole'), amount: '1' });
  const res = await post(app, '/phia/bet', bet);
  const took = Date.now() - started;
  t.ok([503, 504].includes(res.statusCode), `refused with ${res.statusCode}`);
  t.ok(took < 6000, `no hang: ${took} ms`);
  t.equal(await pendingVoids(app), 1, 'void queued for the undecided bet');
});
