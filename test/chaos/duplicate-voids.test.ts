/**
 * Two gaps the chaos soak found, reproduced step by step on the real stack, now closed:
 * B: a Void names the attempt that was answered with the error, and the wallet keeps what another
 *    attempt applied and answered 200 (outcome "kept").
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

t.test('B: a 200 stays when a duplicate meets a wallet outage and Redis never stored the 200', async (t) => {
  const user = `${stack.runId}-b`;
  const body = bet(user, `${user}-tx`);
  await fund(user);

  // 1. Redis is down while the bet runs: the gateway asks the wallet directly (correct), the bet
  //    applies and is answered 200, but the answer never reaches the idempotency store.
  await stack.redis.kill('SIGKILL');
  const first = await send(body);
  await stack.startRedis();
  await ready((status) => status.redis === 'ok');
  t.equal(first.status, 200, 'the bet is answered 200');
  t.equal(await balance(user), '90.00');

  // 2. A duplicate arrives while the wallet is down: 503, and the gateway queues a Void of the bet.
  await stack.wallet.kill('SIGKILL');
  const duplicate = await send(body);
  t.equal(duplicate.status, 503, 'the duplicate meets the wallet outage');
  await stack.startWallet();
  await voidsDrained();

  // 3. The Void names the duplicate's attempt: the bet answered 200 stays.
  t.equal(await stored(`${user}-tx`), 'applied', 'a bet answered 200 stays applied');
  t.equal(await balance(user), '90.00', 'the debit answered 200 stays');
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
