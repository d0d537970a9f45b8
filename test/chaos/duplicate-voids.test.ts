/**
 * Gaps the chaos soak found, reproduced step by step on the real stack, now closed:
 * B: an answer given while Redis was unreachable is written to Redis once it is back, so a copy during
 *    a later wallet outage replays it; and when that answer was lost with its gateway, a Void names the
 *    attempt that was answered with the error, the wallet keeps what another attempt applied and
 *    answered 200 (outcome "kept"), and the gateway replaces its cached 503 with the ledger's 200.
 * A: a gateway remembers the voids it queued until the wallet confirms them, and answers a duplicate
 *    that cannot read the idempotency store with the first (error) answer instead of asking the wallet.
 * (A duplicate sent to ANOTHER gateway while Redis is unreachable is still the open case: see
 * docs/guarantees.md.)
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { WalletCallError } from '../helpers/wallet-client.js';
import { post, sign } from './phia-client.js';
import { ChaosStack, waitFor } from './stack.js';

const stack = new ChaosStack({
  runId: `gap${randomBytes(4).toString('hex')}`,
  walletDeadlineMs: 1000,
  gateways: 1,
  redisPersistence: 'aof',
});
await stack.start();
t.teardown(() => stack.close({ dropSchema: true }));

async function fund(userId: string): Promise<void> {
  const admin = stack.admin();
  try {
    await admin.Deposit({ tx_id: `${userId}-dep`, user_id: userId, currency: 'USD', amount: '100.00' });
  } finally {
    admin.close();
  }
}

function bet(userId: string, txId: string): string {
  return JSON.stringify({
    user_id: userId,
    currency: 'USD',
    game_session_id: `${userId}-gs`,
    round_id: `${txId}-round`,
    tx_id: txId,
    amount: '10.00',
  });
}

const send = (body: string) => post(`${stack.gatewayUrl(0)}/phia/bet`, body, sign(stack.signingKey, body), 8000);

async function stored(txId: string): Promise<string> {
  const admin = stack.admin();
  try {
    return (await admin.GetTransaction({ kind: 'bet', tx_id: txId })).status ?? '';
  } catch (error) {
    if (error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND') return 'absent';
    throw error;
  } finally {
    admin.close();
  }
}

async function balance(userId: string): Promise<string> {
  const admin = stack.admin();
  try {
    return (await admin.GetBalance({ user_id: userId, currency: 'USD' })).balance ?? '';
  } finally {
    admin.close();
  }
}

/** Waits until the gateway's /readyz says what `test` wants. */
async function ready(test: (status: { wallet?: string; redis?: string }) => boolean): Promise<void> {
  await waitFor('gateway readiness', 10_000, async () => {
    const response = await fetch(`${stack.gatewayUrl(0)}/readyz`, { signal: AbortSignal.timeout(2000) });
    return test((await response.json()) as { wallet?: string; redis?: string });
  });
}

async function voidsDrained(): Promise<void> {
  await waitFor('void queue', 20_000, async () => {
    const text = await (await fetch(`${stack.gatewayUrl(0)}/metrics`)).text();
    return /^phia_pending_voids 0$/m.test(text);
  });
}

async function gatewayMetric(name: string): Promise<number | undefined> {
  const text = await (await fetch(`${stack.gatewayUrl(0)}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match === null ? undefined : Number(match[1]);
}

/** The gateway reaches the wallet and has read the (empty) void queue, so a request without Redis may be applied. */
async function noVoidsPending(): Promise<void> {
  await ready((status) => status.wallet === 'ok');
  await waitFor('no pending voids', 10_000, async () => (await gatewayMetric('phia_pending_voids')) === 0);
}

t.test('B1: an answer given while Redis was down is replayed to a copy during a wallet outage', async (t) => {
  const user = `${stack.runId}-b1`;
  const body = bet(user, `${user}-tx`);
  await fund(user);

  // 1. Redis is down while the bet runs: the gateway asks the wallet directly; 200, not stored yet.
  await noVoidsPending();
  await stack.redis.kill('SIGKILL');
  const first = await send(body);
  t.equal(first.status, 200, 'the bet is answered 200');
  t.equal(await gatewayMetric('phia_late_answers_pending'), 1, 'the answer waits for Redis');
  await stack.startRedis();
  await waitFor('late answer stored', 10_000, async () => (await gatewayMetric('phia_late_answers_pending')) === 0);

  // 2. A copy while the wallet is down: Redis has the answer now.
  await stack.wallet.kill('SIGKILL');
  const duplicate = await send(body);
  await stack.startWallet();
  t.equal(duplicate.status, 200, 'the copy replays the first answer');
  t.equal(duplicate.body, first.body, 'byte for byte');
  t.equal(await balance(user), '90.00');
});

t.test('B2: a 200 stays, and becomes the stored answer, when its gateway died before storing it', async (t) => {
  const user = `${stack.runId}-b2`;
  const body = bet(user, `${user}-tx`);
  await fund(user);

  // 1. Redis is down while the bet runs: 200; then the gateway dies before Redis is back.
  await noVoidsPending();
  await stack.redis.kill('SIGKILL');
  const first = await send(body);
  t.equal(first.status, 200, 'the bet is answered 200');
  t.equal(await balance(user), '90.00');
  await stack.gateways[0]!.kill('SIGKILL');
  await stack.startRedis();
  await stack.startGateway(0);
  await ready((status) => status.redis === 'ok');

  // 2. A duplicate arrives while the wallet is down: 503 (cached), and a Void of its attempt is queued.
  await stack.wallet.kill('SIGKILL');
  const duplicate = await send(body);
  t.equal(duplicate.status, 503, 'the duplicate meets the wallet outage');
  t.equal((await send(body)).status, 503, 'and is replayed while the void waits');
  await stack.startWallet();
  await voidsDrained();

  // 3. The Void names the duplicate's attempt: the bet answered 200 stays, and the ledger's 200
  //    replaces the cached 503.
  t.equal(await stored(`${user}-tx`), 'applied', 'a bet answered 200 stays applied');
  t.equal(await balance(user), '90.00', 'the debit answered 200 stays');
  await waitFor('cached answer corrected', 10_000, async () => (await send(body)).status === 200);
  t.equal((await send(body)).body, first.body, 'copies get the first answer again, byte for byte');
});

t.test('A: a duplicate gets the first 503 while its void is pending and Redis is unreachable', async (t) => {
  const user = `${stack.runId}-a`;
  const body = bet(user, `${user}-tx`);
  await fund(user);

  // 1. The wallet is down: 503, and a Void is queued in Redis.
  await stack.wallet.kill('SIGKILL');
  const first = await send(body);
  t.equal(first.status, 503, 'the bet is answered 503');

  // 2. Redis stops answering before the Void is delivered; the wallet comes back.
  stack.redis.pause();
  await stack.startWallet();
  await ready((status) => status.wallet === 'ok');

  // 3. A duplicate: the gateway cannot read Redis, but remembers the Void it queued: same 503.
  const duplicate = await send(body);
  stack.redis.resume();
  t.equal(duplicate.status, 503, 'a duplicate gets the first answer');

  // 4. The Void arrives later and reverses what the duplicate applied: the money follows the first answer.
  await voidsDrained();
  t.equal(await balance(user), '100.00', 'the bet answered 503 moved no money');
  t.not(await stored(`${user}-tx`), 'applied');
});

t.test(
  'A2: without Redis, while voids are pending, nothing new applies: stored outcomes replay, the rest is refused',
  async (t) => {
    const user = `${stack.runId}-a2`;
    await fund(user);
    const applied = bet(user, `${user}-applied`);
    const errored = bet(user, `${user}-errored`);
    const fresh = bet(user, `${user}-fresh`);
    const firstApplied = await send(applied);
    t.equal(firstApplied.status, 200);

    // 1. The wallet is down: 503, and a Void is queued in Redis.
    await stack.wallet.kill('SIGKILL');
    t.equal((await send(errored)).status, 503, 'the bet is answered 503');

    // 2. The gateway restarts (it no longer remembers that void itself: as if it were another gateway)
    //    and sees one void pending in Redis.
    await stack.gateways[0]!.kill('SIGKILL');
    await stack.startGateway(0);
    await waitFor('pending void seen', 10_000, async () => (await gatewayMetric('phia_pending_voids')) === 1);

    // 3. Redis stops answering, then the wallet comes back: the void cannot be claimed yet.
    stack.redis.pause();
    t.teardown(() => stack.redis.resume());
    await stack.startWallet();
    await ready((status) => status.wallet === 'ok');

    // 4. Copies and a new request, without the idempotency store.
    const copyOfErrored = await send(errored);
    const copyOfApplied = await send(applied);
    const freshAnswer = await send(fresh);
    // A variant of the refused bet (same tx_id, other amount) meets the tombstone that refusal left:
    // it must not claim the key.
    const variantOfFresh = bet(user, `${user}-fresh`).replace('"10.00"', '"11.00"');
    const variantAnswer = await send(variantOfFresh);
    stack.redis.resume();
    t.equal(copyOfErrored.status, 503, 'a copy of the errored bet is not applied: 503 again');
    t.equal(copyOfApplied.status, 200, 'a copy of an applied bet replays the ledger');
    t.equal(copyOfApplied.body, firstApplied.body, 'byte for byte');
    t.equal(freshAnswer.status, 503, 'a new bet is refused rather than applied blind');
    t.equal(variantAnswer.status, 409, 'its variant is other content: the tombstone names the refused bet');
    t.match(variantAnswer.body, /IDEMPOTENCY_MISMATCH/);

    // 5. Once the void lands, the money follows the first answers, and the refused bet stays refused.
    await voidsDrained();
    t.equal(await balance(user), '90.00', 'only the bet answered 200 moved money');
    t.not(await stored(`${user}-errored`), 'applied');
    t.not(await stored(`${user}-fresh`), 'applied');
    t.equal((await send(fresh)).status, 503, 'a copy of the refused bet gets the same answer, not a mismatch');
    t.equal((await send(errored)).status, 503);
    const variantLater = await send(variantOfFresh);
    t.equal(variantLater.status, 409, 'once the bet claimed its key, the variant is other content');
    t.match(variantLater.body, /IDEMPOTENCY_MISMATCH/);
  },
);
