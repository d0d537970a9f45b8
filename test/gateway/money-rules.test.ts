/**
 * Contract rules 9 and 10 through the real gateway and wallet (PostgreSQL, Redis): the size limits of
 * amounts and balances, and wins naming a bet that is not theirs or was never applied.
 */
import t from 'tap';
import { WalletCallError } from '../helpers/wallet-client.js';
import { expectError, json, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_money_rules' });
t.teardown(() => stack.close());

async function newPlayer(currency = 'USD', amount = '100'): Promise<string> {
  const user = uid('player');
  await stack.fund(user, currency, amount);
  return user;
}

/** The contract code a wallet call was declined with, or 'OK'. */
async function walletCode(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'OK';
  } catch (error) {
    return error instanceof WalletCallError ? error.code : String(error);
  }
}

/** How many ledger entries the player's account has: "nothing moved" means this did not change. */
async function entriesOf(user: string, currency = 'USD'): Promise<number> {
  const found = await stack.schema.pool.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM entries e JOIN accounts a ON a.id = e.account_id
     WHERE a.owner_kind = 'player' AND a.user_id = $1 AND a.currency = $2`,
    [user, currency],
  );
  return Number(found.rows[0]?.n);
}

/**
 * Puts a balance near the limit straight in the database: reaching it through the API would take a
 * million credits of 18 digits. The books of this player no longer balance; no test here checks them.
 */
async function setBalance(user: string, balance: string, currency = 'USD'): Promise<void> {
  await stack.schema.pool.query(
    `UPDATE accounts SET balance = $3 WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2`,
    [user, currency, balance],
  );
}

t.test('a 24-digit win is refused 400, moves nothing, and the account keeps working', async (t) => {
  const user = await newPlayer('USD', '100');
  const round = uid('round');
  const hugeWin = moneyBody({ user_id: user, round_id: round, amount: '999999999999999999999999.00' });
  expectError(t, await stack.post('/phia/win', hugeWin), 400, 'INVALID_REQUEST', 'invalid request', '24-digit win');
  t.equal(await stack.balance(user, 'USD'), '100.00', 'nothing moved');
  t.equal(await entriesOf(user), 1, 'only the deposit is in the books');
  t.equal(await walletCode(stack.admin.GetTransaction({ kind: 'win', tx_id: hugeWin.tx_id })), 'ACCOUNT_NOT_FOUND');

  const bet = moneyBody({ user_id: user, round_id: round, amount: '10' });
  t.same(json(await stack.post('/phia/bet', bet)), { balance: '90.00', currency: 'USD', tx_id: bet.tx_id });
  const win = moneyBody({ user_id: user, round_id: round, amount: '5', bet_tx_id: bet.tx_id });
  t.same(json(await stack.post('/phia/win', win)), { balance: '95.00', currency: 'USD', tx_id: win.tx_id });
  t.same(json(await stack.post('/phia/balance', { user_id: user, currency: 'USD' })), {
    balance: '95.00',
    currency: 'USD',
  });
  t.equal((await stack.admin.GetBalance({ user_id: user, currency: 'USD' })).balance, '95.00');
  const record = await stack.admin.GetTransaction({ kind: 'win', tx_id: win.tx_id });
  t.equal(record.status, 'applied');
  t.equal(record.balance, '95.00');
});

t.test('19 integer digits are refused at the gateway and at the wallet; 18 pass', async (t) => {
  const user = await newPlayer('USD', '100');
  for (const amount of ['1000000000000000000', '1234567890123456789.5', '9999999999999999999.99']) {
    for (const action of ['bet', 'win', 'refund']) {
      const body = moneyBody({ user_id: user, amount });
      expectError(
        t,
        await stack.post(`/phia/${action}`, body),
        400,
        'INVALID_REQUEST',
        'invalid',
        `${action} ${amount}`,
      );
      const asNumber = JSON.stringify(moneyBody({ user_id: user })).replace('"amount":"1.00"', `"amount":${amount}`);
      expectError(
        t,
        await stack.post(`/phia/${action}`, asNumber),
        400,
        'INVALID_REQUEST',
        'invalid',
        `${action} ${amount} as number`,
      );
    }
    const fields = { user_id: user, currency: 'USD', amount };
    const game = { ...fields, round_id: 'r', game_session_id: 'g' };
    for (const [method, request] of [
      ['Deposit', fields],
      ['Withdraw', fields],
      ['Bet', game],
      ['Win', game],
      ['Refund', game],
    ] as const) {
      t.equal(
        await walletCode(stack.admin[method]({ ...request, tx_id: uid('tx') })),
        'INVALID_REQUEST',
        `wallet ${method} ${amount}`,
      );
    }
  }
  t.equal(await stack.balance(user, 'USD'), '100.00', 'nothing moved');
  t.equal(await entriesOf(user), 1);

  const win = moneyBody({ user_id: user, amount: '999999999999999999.99' });
  t.same(json(await stack.post('/phia/win', win)), {
    balance: '1000000000000000099.99',
    currency: 'USD',
    tx_id: win.tx_id,
  });
});

t.test('a credit that would pass 24 integer digits is declined 400, stored, and moves nothing', async (t) => {
  const user = await newPlayer('USD', '100');
  const bet = moneyBody({ user_id: user, amount: '5' });
  t.equal((await stack.post('/phia/bet', bet)).statusCode, 200);
  await setBalance(user, '999999999999999999999990.00');
  const entries = await entriesOf(user);

  const tooMuch = moneyBody({ user_id: user, amount: '10.00' });
  expectError(t, await stack.post('/phia/win', tooMuch), 400, 'INVALID_REQUEST', 'invalid request', 'win to 10^24');
  expectError(t, await stack.post('/phia/win', tooMuch), 400, 'INVALID_REQUEST', 'invalid request', 'its copy');
  const stored = await stack.admin.GetTransaction({ kind: 'win', tx_id: tooMuch.tx_id });
  t.same([stored.status, stored.error_code], ['declined', 'INVALID_REQUEST'], 'the decline is in the ledger');

  const upToTheLimit = moneyBody({ user_id: user, amount: '9.99' });
  t.equal(json(await stack.post('/phia/win', upToTheLimit)).balance, '999999999999999999999999.99');
  const refund = { ...bet, tx_id: uid('rf'), bet_tx_id: bet.tx_id };
  expectError(t, await stack.post('/phia/refund', refund), 400, 'INVALID_REQUEST', 'invalid request', 'refund');
  t.equal(
    await walletCode(stack.admin.Deposit({ tx_id: uid('dep'), user_id: user, currency: 'USD', amount: '0.01' })),
    'INVALID_REQUEST',
    'deposit',
  );
  t.equal(await entriesOf(user), entries + 1, 'only the win up to the limit moved money');

  // The account is as usable as any other at its limit.
  t.equal(
    json(await stack.post('/phia/balance', { user_id: user, currency: 'USD' })).balance,
    '999999999999999999999999.99',
  );
  const next = moneyBody({ user_id: user, amount: '0.99' });
  t.equal(json(await stack.post('/phia/bet', next)).balance, '999999999999999999999999.00');
  t.equal(
    (await stack.admin.GetTransaction({ kind: 'bet', tx_id: next.tx_id })).balance,
    '999999999999999999999999.00',
  );
});

t.test("a win naming another account's bet is 400, one naming a bet not applied is 409; nothing moves", async (t) => {
  const alice = await newPlayer('USD', '100');
  const bob = await newPlayer('USD', '100');
  await stack.fund(alice, 'EUR', '100');
  const aliceBet = moneyBody({ user_id: alice, amount: '10' });
  t.equal((await stack.post('/phia/bet', aliceBet)).statusCode, 200);

  const bobWin = moneyBody({ user_id: bob, amount: '50', bet_tx_id: aliceBet.tx_id });
  expectError(t, await stack.post('/phia/win', bobWin), 400, 'INVALID_REQUEST', 'invalid request', "another's bet");
  expectError(t, await stack.post('/phia', { action: 'win', ...bobWin }), 400, 'INVALID_REQUEST', 'invalid', 'copy');
  const euroWin = moneyBody({ user_id: alice, currency: 'EUR', amount: '50', bet_tx_id: aliceBet.tx_id });
  expectError(t, await stack.post('/phia/win', euroWin), 400, 'INVALID_REQUEST', 'invalid request', 'other currency');
  const bobRefund = moneyBody({ user_id: bob, amount: '10', bet_tx_id: aliceBet.tx_id });
  expectError(t, await stack.post('/phia/refund', bobRefund), 400, 'INVALID_REQUEST', 'invalid', "refund of another's");

  const declinedBet = moneyBody({ user_id: bob, amount: '1000' });
  expectError(t, await stack.post('/phia/bet', declinedBet), 402, 'INSUFFICIENT_FUNDS', 'insufficient funds');
  const winOfDeclined = moneyBody({ user_id: bob, amount: '50', bet_tx_id: declinedBet.tx_id });
  expectError(t, await stack.post('/phia/win', winOfDeclined), 409, 'BET_NOT_APPLIED', 'bet not applied', 'declined');
  expectError(t, await stack.post('/phia/win', winOfDeclined), 409, 'BET_NOT_APPLIED', 'bet not applied', 'its copy');
  const stored = await stack.admin.GetTransaction({ kind: 'win', tx_id: winOfDeclined.tx_id });
  t.same([stored.status, stored.error_code], ['declined', 'BET_NOT_APPLIED'], 'the decline is in the ledger');

  const voidedBet = moneyBody({ user_id: bob, amount: '10' });
  t.equal((await stack.post('/phia/bet', voidedBet)).statusCode, 200);
  t.equal((await stack.admin.Void({ kind: 'bet', tx_id: voidedBet.tx_id })).outcome, 'reversed');
  const winOfVoided = moneyBody({ user_id: bob, amount: '50', bet_tx_id: voidedBet.tx_id });
  expectError(t, await stack.post('/phia/win', winOfVoided), 409, 'BET_NOT_APPLIED', 'bet not applied', 'voided');

  t.equal(await stack.balance(alice, 'USD'), '90.00');
  t.equal(await stack.balance(alice, 'EUR'), '100.00');
  t.equal(await stack.balance(bob, 'USD'), '100.00', 'no win paid');

  const unseen = moneyBody({ user_id: bob, amount: '1', bet_tx_id: uid('unseen') });
  t.equal(json(await stack.post('/phia/win', unseen)).balance, '101.00', 'a bet not seen yet: pays');
  const unnamed = moneyBody({ user_id: bob, amount: '1' });
  t.equal(json(await stack.post('/phia/win', unnamed)).balance, '102.00', 'no bet_tx_id: pays');
});
