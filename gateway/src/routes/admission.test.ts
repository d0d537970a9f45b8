/**
 * Admission control against the real wallet, PostgreSQL and Redis: past WALLET_MAX_IN_FLIGHT wallet
 * calls a request is answered 503 WALLET_UNAVAILABLE at once, stored for its duplicates and voided
 * (rule 5); a request whose deadline (counted from its arrival) is already gone is answered 504
 * without a wallet call, and voided too.
 */
import t from 'tap';
import type pg from 'pg';
import { PhiaProcessor } from '../phia/processor.js';
import { expectError, json, quietLogger, uid } from '../test-helpers/index.js';
import { moneyBody, startStack, until } from '../test-helpers/stack.js';

const stack = await startStack({
  label: 'gw_admit',
  env: { WALLET_MAX_IN_FLIGHT: '1', WALLET_DEADLINE_MS: '3000' },
});
t.teardown(() => stack.close());

async function holdAccount(user: string): Promise<{ release(): Promise<void> }> {
  const client: pg.PoolClient = await stack.schema.pool.connect();
  await client.query('BEGIN');
  await client.query(
    `SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 AND currency = 'USD' FOR UPDATE`,
    [user],
  );
  return {
    async release() {
      await client.query('ROLLBACK');
      client.release();
    },
  };
}

async function storedStatus(kind: string, txId: string): Promise<string> {
  try {
    return ((await stack.admin.GetTransaction({ kind, tx_id: txId })) as { status: string }).status;
  } catch {
    return 'none';
  }
}

t.test('past WALLET_MAX_IN_FLIGHT: 503 at once, stored for duplicates, voided, never applied', async (t) => {
  const held = uid('held');
  const other = uid('other');
  await stack.fund(held, 'USD', '50');
  await stack.fund(other, 'USD', '50');
  const lock = await holdAccount(held);

  // The first bet waits in the wallet for the account lock: one wallet call in flight.
  let firstDone = false;
  const first = stack.post('/phia/bet', moneyBody({ user_id: held, amount: '10' })).then((res) => {
    firstDone = true;
    return res;
  });
  t.ok(await until(() => stack.app.gateway.wallet.inFlight === 1), 'the first bet is in flight');

  const bet = moneyBody({ user_id: other, amount: '7' });
  const refused = await stack.post('/phia/bet', bet);
  expectError(t, refused, 503, 'WALLET_UNAVAILABLE', 'unavailable');
  t.equal(firstDone, false, 'answered while the first call was still in flight (not queued behind it)');
  t.equal(stack.app.gateway.wallet.inFlight, 1);
  const balanceRefused = await stack.post('/phia/balance', { user_id: other, currency: 'USD' });
  expectError(t, balanceRefused, 503, 'WALLET_UNAVAILABLE', 'unavailable', 'a balance is refused too');

  const duplicate = await stack.post('/phia/bet', bet);
  t.equal(duplicate.statusCode, 503, 'a duplicate gets the same answer');
  t.equal(duplicate.body, refused.body);

  await lock.release();
  const firstRes = await first;
  t.equal(firstRes.statusCode, 200, 'the bet in flight completes normally');

  t.ok(await until(async () => (await stack.app.gateway.voids.pendingCount()) === 0, 5000), 'the void was delivered');
  t.not(await storedStatus('bet', bet.tx_id as string), 'applied', 'the refused bet never applied');
  t.equal(await stack.balance(other, 'USD'), '50.00');
  t.equal(await stack.balance(held, 'USD'), '40.00');
  t.equal(await storedStatus('bet', bet.tx_id as string), 'voided', 'S: tombstoned before the 503 left');

  // Once the call in flight is done, requests go through again.
  const after = await stack.post('/phia/bet', moneyBody({ user_id: other, amount: '1' }));
  t.equal(after.statusCode, 200);
  t.equal(json(after).balance, '49.00');
});

t.test('the deadline counts from arrival: already gone, 504 without a wallet call, voided', async (t) => {
  const user = uid('late');
  await stack.fund(user, 'USD', '20');
  const { wallet, store, voids, config } = stack.app.gateway;
  const processor = new PhiaProcessor({
    wallet,
    store,
    voids,
    currencies: config.currencies,
  });
  const bet = moneyBody({ user_id: user, amount: '5' });
  const answer = await processor.money('bet', bet as never, {
    requestId: uid('req'),
    log: quietLogger(),
    // Arrived a whole deadline ago (it waited in the gateway's queues): no time left for the wallet.
    arrivedAt: Date.now() - config.walletDeadlineMs - 1,
  });
  t.equal(answer.status, 504);
  t.equal(answer.code, 'WALLET_TIMEOUT');
  t.ok(await until(async () => (await voids.pendingCount()) === 0, 5000), 'the void was delivered');
  t.not(await storedStatus('bet', bet.tx_id as string), 'applied');
  t.equal(await stack.balance(user, 'USD'), '20.00');
  const duplicate = await stack.post('/phia/bet', bet);
  t.equal(duplicate.statusCode, 504, 'a duplicate gets the first answer');

  // With time left (arrived just now) the same path reaches the wallet.
  const fresh = moneyBody({ user_id: user, amount: '5' });
  const ok = await processor.money('bet', fresh as never, {
    requestId: uid('req'),
    log: quietLogger(),
    arrivedAt: Date.now(),
  });
  t.equal(ok.status, 200);
  t.equal(await stack.balance(user, 'USD'), '15.00');
});

t.test('the wallet client refuses a call whose deadline is gone before making it', async (t) => {
  const { wallet } = stack.app.gateway;
  await t.rejects(wallet.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt: Date.now() - 60_000 }), {
    code: 'WALLET_TIMEOUT',
    decidedByWallet: false,
  });
});

t.test('answered requests leave the in-progress count (bound: 4 x WALLET_MAX_IN_FLIGHT)', async (t) => {
  const user = uid('seq');
  await stack.fund(user, 'USD', '20');
  for (let i = 0; i < 12; i++) {
    const res = await stack.post('/phia/balance', { user_id: user, currency: 'USD' });
    t.equal(res.statusCode, 200, `request ${i + 1} of 12, one at a time`);
  }
});
