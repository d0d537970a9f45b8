/**
 * Contract rule 6 through HTTP, against the real wallet and real Redis: concurrent duplicates,
 * replay after a restart, duplicates waiting for a running first request, REQUEST_IN_PROGRESS,
 * Redis going down mid-run and coming back, and the in-process store.
 */
import t from 'tap';
import { moneyFingerprint, voidOutboxKeys } from '@phia/proto';
import { expectError, json, post, uid } from '../../gateway/src/test-helpers/index.js';
import {
  moneyBody,
  proxiedRedisApp,
  startStack,
  until,
  waitForAppRedis,
  holdAccount,
} from '../helpers/gateway-stack.js';
import type { RedisClient } from '../../gateway/src/redis.js';
import { member, RedisVoidBackend, type VoidJob } from '../../gateway/src/voids/backends.js';
import { VoidQueue } from '../../gateway/src/voids/queue.js';

const stack = await startStack({ label: 'gw_idem' });
t.teardown(() => stack.close());

/** The bet's fingerprint as the gateway computes it (`amount` as normalized for USD). */
function fingerprintOf(bet: Record<string, unknown>, amount: string): string {
  const text = (name: string) => (typeof bet[name] === 'string' ? bet[name] : '');
  return moneyFingerprint('bet', {
    user_id: text('user_id'),
    currency: 'USD',
    amount,
    round_id: text('round_id'),
    game_session_id: text('game_session_id'),
    bet_tx_id: '',
  });
}

/** How many wallet calls of `method` the wallet has answered so far. */
async function walletCalls(method: string): Promise<number> {
  const metric = await stack.wallet.metrics.calls.get();
  return metric.values.filter((v) => v.labels.method === method).reduce((sum, v) => sum + v.value, 0);
}

t.test('50 concurrent duplicates: 50 identical answers, one debit, one wallet call', async (t) => {
  const user = uid('dup');
  await stack.fund(user, 'USD', '100');
  const second = await stack.newApp();
  await waitForAppRedis(second);
  const bet = moneyBody({ user_id: user, amount: '3.33' });
  const body = JSON.stringify(bet);
  const betsBefore = await walletCalls('Bet');
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => post(i % 2 === 0 ? stack.app : second, '/phia/bet', body)),
  );
  const expected = JSON.stringify({ balance: '96.67', currency: 'USD', tx_id: bet.tx_id });
  t.same(
    answers.map((a) => a.statusCode),
    Array(50).fill(200),
  );
  t.equal(answers.filter((a) => a.body === expected).length, 50, 'the same bytes 50 times');
  t.equal(answers.filter((a) => a.headers['idempotent-replayed'] === 'true').length, 49, '49 replays');
  t.equal(await stack.balance(user, 'USD'), '96.67', 'debited once');
  t.equal((await walletCalls('Bet')) - betsBefore, 1, 'only the first reached the wallet');
});

t.test('the first final answer is replayed after a gateway restart, errors included', async (t) => {
  const user = uid('restart');
  await stack.fund(user, 'USD', '10');
  const first = await stack.newApp();
  await waitForAppRedis(first);
  const ok = moneyBody({ user_id: user, amount: '4' });
  const declined = moneyBody({ user_id: user, amount: '50' });
  const okAnswer = await post(first, '/phia/bet', ok);
  const declinedAnswer = await post(first, '/phia/bet', declined);
  t.equal(okAnswer.statusCode, 200);
  expectError(t, declinedAnswer, 402, 'INSUFFICIENT_FUNDS', 'insufficient funds');
  await first.close();

  // Enough money now: the declined bet must still be declined (PHIA was told so).
  await stack.fund(user, 'USD', '100');
  const restarted = await stack.newApp();
  await waitForAppRedis(restarted);
  const betsBefore = await walletCalls('Bet');
  const okReplay = await post(restarted, '/phia/bet', ok);
  const declinedReplay = await post(restarted, '/phia/bet', declined);
  t.equal(okReplay.body, okAnswer.body, 'same bytes');
  t.equal(okReplay.headers['idempotent-replayed'], 'true', 'from Redis');
  t.equal(declinedReplay.statusCode, 402);
  t.equal(declinedReplay.body, declinedAnswer.body);
  t.equal((await walletCalls('Bet')) - betsBefore, 0, 'the wallet was not asked');

  // Redis forgot (another prefix): the wallet's durable record gives the same answers.
  const amnesic = await stack.newApp({ keyPrefix: `${stack.keyPrefix}other:` });
  await waitForAppRedis(amnesic);
  const fromWallet = await post(amnesic, '/phia/bet', ok);
  t.equal(fromWallet.body, okAnswer.body, 'same bytes from the ledger');
  t.equal(fromWallet.headers['idempotent-replayed'], undefined);
  const declinedFromWallet = await post(amnesic, '/phia/bet', declined);
  t.equal(declinedFromWallet.statusCode, 402);
  t.equal(declinedFromWallet.body, declinedAnswer.body);
  t.equal(await stack.balance(user, 'USD'), '106.00', 'one debit of 4, the 50 never');
});

t.test('a duplicate waits for the running first request, then gets its answer', async (t) => {
  const user = uid('wait');
  await stack.fund(user, 'USD', '10');
  // The first request's gateway has a long deadline, so that on a loaded machine it still commits once
  // the lock is released (the wallet decides a quarter of the budget before the deadline).
  const patient = await stack.newApp({}, { WALLET_DEADLINE_MS: '4500' });
  await waitForAppRedis(patient);
  const bet = moneyBody({ user_id: user, amount: '1' });
  const lock = await holdAccount(stack, user);
  const first = post(patient, '/phia/bet', bet);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const duplicate = stack.post('/phia/bet', bet);
  const mismatch = await stack.post('/phia/bet', { ...bet, amount: '2' });
  expectError(t, mismatch, 409, 'IDEMPOTENCY_MISMATCH', 'tx_id reused', 'different content while the first runs');
  await new Promise((resolve) => setTimeout(resolve, 200));
  await lock.release();
  const [a, b] = await Promise.all([first, duplicate]);
  t.equal(a.statusCode, 200, a.body);
  t.equal(b.body, a.body, 'the duplicate got the first answer');
  t.equal(b.headers['idempotent-replayed'], 'true');
  t.equal(await stack.balance(user, 'USD'), '9.00');
  const metrics = await stack.app.inject({ method: 'GET', url: '/metrics' });
  t.match(metrics.body, /phia_idempotency_lock_waits_total\{action="bet",outcome="replay"\} [1-9]/);
});

t.test('409 REQUEST_IN_PROGRESS when the lock outlives the wait (its owner died), then the ledger', async (t) => {
  const user = uid('busy');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '1' });
  // R4: what a gateway killed mid-request leaves: its lock, no answer.
  const fingerprint = fingerprintOf(bet, '1.00');
  await stack.redis?.set(`${stack.keyPrefix}lock:bet:${bet.tx_id}`, `dead-owner:${fingerprint}`, 'PX', 7000);
  const started = Date.now();
  const duplicate = await stack.post('/phia/bet', bet);
  const waited = Date.now() - started;
  expectError(t, duplicate, 409, 'REQUEST_IN_PROGRESS', 'in progress');
  t.ok(waited >= 5000 && waited < 6000, `waited ${waited} ms, under PHIA's 6 s`);
  t.ok(await until(async () => (await stack.redis?.exists(`${stack.keyPrefix}lock:bet:${bet.tx_id}`)) === 0, 3000));
  const later = await stack.post('/phia/bet', bet);
  t.equal(later.statusCode, 200, 'the lock expired: the ledger decides (R1)');
  t.equal(await stack.balance(user, 'USD'), '9.00');
});

t.test('Redis stopped mid-run: no money moves, copies agree, the gateway stays up and recovers', async (t) => {
  const { proxy, app } = await proxiedRedisApp(stack, t);
  const user = uid('redisdown');
  await stack.fund(user, 'USD', '20');

  const bet1 = moneyBody({ user_id: user, amount: '1' });
  const first = await post(app, '/phia/bet', bet1);
  t.equal(first.statusCode, 200);
  t.equal(await stack.redis?.exists(`${stack.keyPrefix}ans:bet:${bet1.tx_id}`), 1, 'cached in Redis');

  await proxy.stop();
  // N3: a copy of a stored 200 cannot tell whether that row is final without Redis.
  expectError(t, await post(app, '/phia/bet', bet1), 409, 'REQUEST_IN_PROGRESS', 'in progress');
  // N1: no money call without Redis: tombstoned, so it can never apply later.
  const bet2 = moneyBody({ user_id: user, amount: '2' });
  const second = await post(app, '/phia/bet', bet2);
  expectError(t, second, 503, 'WALLET_UNAVAILABLE', 'unavailable');
  t.equal((await post(app, '/phia/bet', bet2)).body, second.body, 'N2: a copy gets the same answer');
  const balance = await post(app, '/phia/balance', { user_id: user, currency: 'USD' });
  t.same(json(balance), { balance: '19.00', currency: 'USD' });
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 503, 'not ready while Redis is down');
  t.match(json(ready), { status: 'degraded', redis: 'down', wallet: 'ok' });
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);

  await proxy.start();
  t.ok(await until(() => app.store.ping(), 5000), 'reconnected');
  const bet3 = moneyBody({ user_id: user, amount: '3' });
  t.equal((await post(app, '/phia/bet', bet3)).statusCode, 200);
  t.equal(await stack.redis?.exists(`${stack.keyPrefix}ans:bet:${bet3.tx_id}`), 1, 'fast path again');
  t.equal((await post(app, '/phia/bet', bet2)).body, second.body, 'R3: the ledger replays the tombstone');
  t.equal(await stack.balance(user, 'USD'), '16.00', 'every bet answered 200 once: 20 - 1 - 3');
  const readyAgain = await app.inject({ method: 'GET', url: '/readyz' });
  t.match(json(readyAgain), { status: 'ready', redis: 'ok' });
});

t.test('in-process store (no REDIS_URL): duplicates replay, one debit', async (t) => {
  const app = await stack.newApp({ redis: null });
  const user = uid('mem');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '2.5' });
  const answers = await Promise.all(Array.from({ length: 20 }, () => post(app, '/phia/bet', bet)));
  t.equal(new Set(answers.map((a) => `${a.statusCode} ${a.body}`)).size, 1, 'all identical');
  t.equal(answers[0]?.statusCode, 200);
  t.equal(await stack.balance(user, 'USD'), '7.50');
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  t.match(json(ready), { status: 'ready', redis: 'disabled' });
});

t.test("the wallet's IDEMPOTENCY_MISMATCH is not cached as the key's answer", async (t) => {
  const user = uid('walletmm');
  await stack.fund(user, 'USD', '10');
  const owner = moneyBody({ user_id: user, amount: '1' });
  const ownerAnswer = await stack.post('/phia/bet', owner);
  t.equal(ownerAnswer.statusCode, 200);
  // A gateway whose store forgot the key: only the wallet knows the owner's content.
  const amnesic = await stack.newApp({ keyPrefix: `${stack.keyPrefix}mm:` });
  await waitForAppRedis(amnesic);
  expectError(
    t,
    await post(amnesic, '/phia/bet', { ...owner, amount: '2' }),
    409,
    'IDEMPOTENCY_MISMATCH',
    'tx_id reused',
  );
  const again = await post(amnesic, '/phia/bet', owner);
  t.equal(again.statusCode, 200, "the owner's duplicate still gets the owner's answer");
  t.equal(again.body, ownerAnswer.body);
  t.equal(await stack.balance(user, 'USD'), '9.00');
});

t.test("O1, N5: a refusal's void delivered first never takes the key from the error answered first", async (t) => {
  const user = uid('refusal');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '1' });
  const fingerprint = fingerprintOf(bet, '1.00');
  // A copy answered 504 (its void pending, its error the key's answer) and another copy settled
  // without Redis nor the wallet (N5: answered 409, its void a refusal), delivered in the wrong order.
  const answered: VoidJob = {
    kind: 'bet',
    tx_id: bet.tx_id as string,
    error_code: 'WALLET_TIMEOUT',
    fingerprint,
    attempt_id: 'a',
  };
  const refused: VoidJob = { ...answered, error_code: 'WALLET_UNAVAILABLE', attempt_id: 'b', refusal: true };
  const durable = new RedisVoidBackend(stack.redis as RedisClient, stack.keyPrefix, 60);
  const queue = new VoidQueue({ send: (job) => stack.admin.Void(job), durable });
  await durable.add(answered, Date.now() + 60_000); // its error stored first, its void held back
  await queue.enqueue(refused);
  // One void per step, delivered by this queue or the app's own drain loop (both read the outbox).
  const jobs = voidOutboxKeys(stack.keyPrefix).jobs;
  const deliver = (job: VoidJob) =>
    until(async () => {
      await queue.drainOnce();
      return (await stack.redis?.zscore(jobs, member(job))) === null;
    }, 30_000);
  t.ok(await deliver(refused), 'the refusal first: it tombstones the bet');
  await durable.retry(answered, Date.now());
  t.ok(await deliver(answered), 'then the void of the error answered');
  const copy = await stack.post('/phia/bet', bet);
  expectError(t, copy, 504, 'WALLET_TIMEOUT', 'wallet timeout');
  t.equal((await stack.admin.GetTransaction({ kind: 'bet', tx_id: bet.tx_id })).error_code, 'WALLET_TIMEOUT');
  t.equal(await stack.balance(user, 'USD'), '10.00');
});
