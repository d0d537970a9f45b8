/**
 * The size limits of contract rule 10 in the ledger: amounts of at most 18 digits before the point,
 * balances of at most 24; a credit that would pass a balance's limit is declined and moves nothing.
 */
import t from 'tap';
import { openTestLedger, outcomeCode } from '../test-helpers/ledger.js';
import type { MoneyInput } from './ledger.js';

const { ledger, db, close } = await openTestLedger('limits');
t.teardown(close);

const LIMIT = '999999999999999999999999.99';
let counter = 0;
const nextId = (prefix: string) => `${prefix}-${++counter}`;

async function fundedPlayer(amount = '100.00'): Promise<string> {
  const user = nextId('user');
  await ledger.deposit({ tx_id: nextId('dep'), user_id: user, currency: 'USD', amount });
  return user;
}

function game(user: string, extra: Partial<MoneyInput> = {}): MoneyInput {
  return {
    tx_id: nextId('tx'),
    user_id: user,
    currency: 'USD',
    amount: '10.00',
    round_id: nextId('round'),
    game_session_id: 'gs-1',
    ...extra,
  };
}

/**
 * Puts a balance near the limit straight in the database (through the API it takes a million credits
 * of 18 digits). The entries are left as they were: no test here checks this player's books.
 */
async function setBalance(user: string, balance: string): Promise<void> {
  await db.query(`UPDATE accounts SET balance = $2 WHERE owner_kind = 'player' AND user_id = $1`, [user, balance]);
}

async function balanceOf(user: string): Promise<string> {
  return (await ledger.getBalance({ user_id: user, currency: 'USD' })).balance;
}

async function entriesOf(user: string): Promise<number> {
  const found = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM entries e JOIN accounts a ON a.id = e.account_id
     WHERE a.owner_kind = 'player' AND a.user_id = $1`,
    [user],
  );
  return Number(found.rows[0]?.n);
}

t.test('an amount of 19 digits before the point is refused by every money request; 18 pass', async (t) => {
  const user = await fundedPlayer();
  for (const amount of ['1000000000000000000', '1000000000000000000.00', '999999999999999999999999.00']) {
    const fields = { user_id: user, currency: 'USD', amount };
    t.equal(
      await outcomeCode(ledger.deposit({ ...fields, tx_id: nextId('d') })),
      'INVALID_REQUEST',
      `deposit ${amount}`,
    );
    t.equal(await outcomeCode(ledger.withdraw({ ...fields, tx_id: nextId('w') })), 'INVALID_REQUEST', 'withdraw');
    t.equal(await outcomeCode(ledger.bet(game(user, { amount }))), 'INVALID_REQUEST', 'bet');
    t.equal(await outcomeCode(ledger.win(game(user, { amount }))), 'INVALID_REQUEST', 'win');
    t.equal(await outcomeCode(ledger.refund(game(user, { amount }))), 'INVALID_REQUEST', 'refund');
  }
  t.equal(await balanceOf(user), '100.00');
  t.equal(await entriesOf(user), 1, 'nothing moved');
  const jpy = await ledger.deposit({
    tx_id: nextId('d'),
    user_id: user,
    currency: 'JPY',
    amount: '999999999999999999',
  });
  t.equal(jpy.balance, '999999999999999999', '18 digits pass');
});

t.test('a credit that would pass 24 digits is declined, stored, and moves nothing', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user, { amount: '5.00' });
  await ledger.bet(bet);
  await setBalance(user, '999999999999999999999990.00');
  const entries = await entriesOf(user);

  const win = game(user, { amount: '10.00' });
  t.equal(await outcomeCode(ledger.win(win)), 'INVALID_REQUEST', 'a win to 10^24');
  t.equal(await outcomeCode(ledger.win(win)), 'INVALID_REQUEST', 'its copy replays the decline');
  const stored = await ledger.getTransaction({ kind: 'win', tx_id: win.tx_id });
  t.same([stored.status, stored.error_code], ['declined', 'INVALID_REQUEST']);
  t.equal((await ledger.win(game(user, { amount: '9.99' }))).balance, LIMIT, 'up to the limit pays');
  t.equal(await outcomeCode(ledger.refund(game(user, { amount: '5.00', bet_tx_id: bet.tx_id }))), 'INVALID_REQUEST');
  t.equal(
    await outcomeCode(ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'USD', amount: '0.01' })),
    'INVALID_REQUEST',
  );
  t.equal(await ledger.getBalance({ user_id: user, currency: 'USD' }).then((b) => b.balance), LIMIT);
  t.equal(await entriesOf(user), entries + 1, 'only the win up to the limit moved money');
  t.equal((await ledger.win(game(user, { amount: '0' }))).balance, LIMIT, 'a zero win at the limit pays');
  t.equal((await ledger.bet(game(user, { amount: '0.99' }))).balance, '999999999999999999999999.00');
});

t.test('a void whose reversal of a debit would pass the limit waits until there is room', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user, { amount: '5.00' });
  await ledger.bet(bet);
  await setBalance(user, '999999999999999999999999.00');
  t.equal(
    await outcomeCode(ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' })),
    'INVALID_REQUEST',
  );
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: bet.tx_id })).status, 'applied', 'nothing moved');
  t.equal(await balanceOf(user), '999999999999999999999999.00', 'and the account still answers');
  await ledger.bet(game(user, { amount: '5.00' }));
  const voided = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' });
  t.same([voided.outcome, voided.balance], ['reversed', '999999999999999999999999.00'], 'retried once there is room');
});
