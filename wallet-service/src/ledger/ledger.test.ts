import t from 'tap';
import { moneyFingerprint } from '@phia/proto';
import { openTestLedger, outcomeCode } from '../test-helpers/ledger.js';
import type { MoneyInput } from './ledger.js';

const { ledger, db, close } = await openTestLedger('ledger');
t.teardown(close);

let counter = 0;
const nextId = (prefix: string) => `${prefix}-${++counter}`;

async function fundedPlayer(amount = '100.00', currency = 'USD'): Promise<string> {
  const user = nextId('user');
  await ledger.deposit({ tx_id: nextId('dep'), user_id: user, currency, amount });
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

/** The fingerprint the gateway sends for a bet request (as moneyFingerprint of @phia/proto). */
function betPrint(request: MoneyInput): string {
  return moneyFingerprint('bet', {
    user_id: request.user_id,
    currency: request.currency,
    amount: request.amount,
    round_id: request.round_id ?? '',
    game_session_id: request.game_session_id ?? '',
    bet_tx_id: '',
  });
}

async function balanceOf(user: string, currency = 'USD'): Promise<string> {
  return (await ledger.getBalance({ user_id: user, currency })).balance;
}

t.test('deposit creates the account, withdraw checks funds', async (t) => {
  const user = nextId('user');
  t.equal(await outcomeCode(ledger.getBalance({ user_id: user, currency: 'USD' })), 'ACCOUNT_NOT_FOUND');
  const deposited = await ledger.deposit({ tx_id: nextId('dep'), user_id: user, currency: 'USD', amount: '50' });
  t.same(deposited.balance, '50.00');
  const withdrawn = await ledger.withdraw({ tx_id: nextId('wd'), user_id: user, currency: 'USD', amount: '20.5' });
  t.equal(withdrawn.balance, '29.50');
  t.equal(
    await outcomeCode(ledger.withdraw({ tx_id: nextId('wd'), user_id: user, currency: 'USD', amount: '29.51' })),
    'INSUFFICIENT_FUNDS',
  );
  t.equal(await balanceOf(user), '29.50');
});

t.test('bet debits, win credits, refund credits back, zero amounts are valid', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user, { amount: '12.34' });
  t.same(await ledger.bet(bet), { balance: '87.66', currency: 'USD', tx_id: bet.tx_id });
  const win = await ledger.win(game(user, { amount: '0', round_id: bet.round_id, bet_tx_id: bet.tx_id }));
  t.equal(win.balance, '87.66', 'a zero win (losing round) is valid and moves nothing');
  t.equal((await ledger.win(game(user, { amount: '2.66' }))).balance, '90.32');
  t.equal((await ledger.refund(game(user, { amount: '12.34', bet_tx_id: bet.tx_id }))).balance, '102.66');
  t.equal((await ledger.bet(game(user, { amount: '0' }))).balance, '102.66');
});

t.test('insufficient funds, unknown account and a balance that never goes below zero', async (t) => {
  const user = await fundedPlayer('5.00');
  t.equal(await outcomeCode(ledger.bet(game(user, { amount: '5.01' }))), 'INSUFFICIENT_FUNDS');
  t.equal((await ledger.bet(game(user, { amount: '5.00' }))).balance, '0.00');
  t.equal(await outcomeCode(ledger.bet(game('nobody-here'))), 'ACCOUNT_NOT_FOUND');
  // The database enforces the rule as well, whatever the code does.
  await t.rejects(
    db.query(`UPDATE accounts SET balance = -1 WHERE owner_kind = 'player' AND user_id = $1`, [user]),
    /player_balance_not_negative/,
  );
});

t.test('decimals per currency', async (t) => {
  const user = await fundedPlayer('0');
  t.equal(
    (await ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'BTC', amount: '0.00000001' })).balance,
    '0.00000001',
  );
  t.equal(
    await outcomeCode(ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'BTC', amount: '0.000000001' })),
    'INVALID_REQUEST',
  );
  const eth = await ledger.deposit({
    tx_id: nextId('d'),
    user_id: user,
    currency: 'ETH',
    amount: '1.000000000000000001',
  });
  t.equal(eth.balance, '1.000000000000000001', '18 decimals kept exactly');
  t.equal(
    (await ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'JPY', amount: '1500' })).balance,
    '1500',
  );
  t.equal(
    await outcomeCode(ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'JPY', amount: '1.5' })),
    'INVALID_REQUEST',
  );
  t.equal(
    await outcomeCode(ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'USD', amount: '1.001' })),
    'INVALID_REQUEST',
  );
  t.equal(
    await outcomeCode(ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'XXX', amount: '1' })),
    'INVALID_REQUEST',
  );
  for (const bad of ['-1', '1e3', ' 1', '0x10', '1.', '.5', '', '01']) {
    t.equal(
      await outcomeCode(ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'USD', amount: bad })),
      'INVALID_REQUEST',
      `amount "${bad}" refused`,
    );
  }
  t.equal((await ledger.getBalance({ user_id: user, currency: 'USD' })).balance, '0.00', 'nothing moved');
});

t.test('field limits', async (t) => {
  const user = await fundedPlayer();
  t.equal(await outcomeCode(ledger.bet(game(user, { tx_id: 'x'.repeat(129) }))), 'INVALID_REQUEST');
  t.equal(await outcomeCode(ledger.bet(game(user, { tx_id: '' }))), 'INVALID_REQUEST');
  t.equal(await outcomeCode(ledger.bet(game(user, { round_id: '' }))), 'INVALID_REQUEST');
  t.equal(await outcomeCode(ledger.bet(game(user, { game_session_id: undefined }))), 'INVALID_REQUEST');
  t.equal(await balanceOf(user), '100.00');
});

t.test('idempotency: duplicates replay the first outcome, different content is a mismatch', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  const first = await ledger.bet(bet);
  await ledger.win(game(user, { amount: '5.00' }));
  t.same(await ledger.bet(bet), first, 'the replay carries the first balance, not the current one');
  t.same(await ledger.bet({ ...bet, amount: '10' }), first, '"10" and "10.00" are the same amount');
  t.equal(await outcomeCode(ledger.bet({ ...bet, amount: '11.00' })), 'IDEMPOTENCY_MISMATCH');
  t.equal(await outcomeCode(ledger.bet({ ...bet, round_id: 'other' })), 'IDEMPOTENCY_MISMATCH');
  t.equal(await balanceOf(user), '95.00', 'debited once');

  // A decline is stored too: the duplicate is declined even after the funds arrived.
  const poor = await fundedPlayer('1.00');
  const big = game(poor, { amount: '50.00' });
  t.equal(await outcomeCode(ledger.bet(big)), 'INSUFFICIENT_FUNDS');
  await ledger.deposit({ tx_id: nextId('dep'), user_id: poor, currency: 'USD', amount: '100' });
  t.equal(await outcomeCode(ledger.bet(big)), 'INSUFFICIENT_FUNDS');
  t.equal(await balanceOf(poor), '101.00');

  // A refund may reuse its bet's tx_id: the key is (kind, tx_id).
  const refund = await ledger.refund(game(user, { tx_id: bet.tx_id, bet_tx_id: bet.tx_id }));
  t.equal(refund.balance, '105.00');
  const stored = await ledger.getTransaction({ kind: 'bet', tx_id: bet.tx_id });
  t.equal(stored.status, 'applied');
  t.equal(stored.refunded_amount, '10.00');
});

t.test('sessions: unknown, expired, closed, other user, other currency', async (t) => {
  const user = await fundedPlayer();
  const other = await fundedPlayer();
  const { session_id } = await ledger.openSession({ user_id: user, currency: 'USD', ttl_seconds: 60 });
  t.equal((await ledger.bet(game(user, { session_id }))).balance, '90.00');
  t.equal(await outcomeCode(ledger.bet(game(user, { session_id: 'no-such-session' }))), 'SESSION_NOT_FOUND');
  t.equal(await outcomeCode(ledger.bet(game(other, { session_id }))), 'WRONG_SESSION');
  t.equal(await outcomeCode(ledger.getBalance({ user_id: other, currency: 'USD', session_id })), 'WRONG_SESSION');
  await ledger.deposit({ tx_id: nextId('d'), user_id: user, currency: 'EUR', amount: '10' });
  t.equal(await outcomeCode(ledger.bet(game(user, { currency: 'EUR', session_id }))), 'WRONG_SESSION');

  const expiring = await ledger.openSession({ user_id: user, currency: 'USD' });
  await db.query(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE session_id = $1`, [
    expiring.session_id,
  ]);
  t.equal(await outcomeCode(ledger.bet(game(user, { session_id: expiring.session_id }))), 'SESSION_NOT_FOUND');
  t.equal(
    await outcomeCode(ledger.getBalance({ user_id: user, currency: 'USD', session_id: expiring.session_id })),
    'SESSION_NOT_FOUND',
  );
  // Wins and refunds need no live session.
  t.equal((await ledger.win(game(user, { session_id: expiring.session_id, amount: '1.00' }))).balance, '91.00');

  await ledger.closeSession({ session_id });
  t.equal(await outcomeCode(ledger.bet(game(user, { session_id }))), 'SESSION_NOT_FOUND');
  t.equal(await outcomeCode(ledger.openSession({ user_id: 'ghost', currency: 'USD' })), 'ACCOUNT_NOT_FOUND');
  t.equal(await balanceOf(user), '91.00');
});

t.test('blocked players cannot bet but still get wins and refunds', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  await ledger.bet(bet);
  await ledger.setAccountStatus({ user_id: user, currency: 'USD', blocked: true });
  t.equal(await outcomeCode(ledger.bet(game(user))), 'PLAYER_BLOCKED');
  t.equal((await ledger.win(game(user, { amount: '3.00' }))).balance, '93.00');
  t.equal((await ledger.refund(game(user, { bet_tx_id: bet.tx_id }))).balance, '103.00');
  await ledger.setAccountStatus({ user_id: user, currency: 'USD', blocked: false });
  t.equal((await ledger.bet(game(user))).balance, '93.00');
  t.equal(
    await outcomeCode(ledger.setAccountStatus({ user_id: 'ghost', currency: 'USD', blocked: true })),
    'ACCOUNT_NOT_FOUND',
  );
});

t.test('refunds: by bet, partial, never more than is left, by round', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user, { amount: '30.00' });
  await ledger.bet(bet);
  t.equal((await ledger.refund(game(user, { amount: '10.00', bet_tx_id: bet.tx_id }))).balance, '80.00');
  t.equal(
    await outcomeCode(ledger.refund(game(user, { amount: '20.01', bet_tx_id: bet.tx_id }))),
    'REFUND_EXCEEDS_BET',
  );
  t.equal((await ledger.refund(game(user, { amount: '20.00', bet_tx_id: bet.tx_id }))).balance, '100.00');
  t.equal(await outcomeCode(ledger.refund(game(user, { amount: '0.01', bet_tx_id: bet.tx_id }))), 'REFUND_EXCEEDS_BET');
  t.equal(
    await outcomeCode(ledger.win(game(user, { amount: '5.00', bet_tx_id: bet.tx_id }))),
    'BET_REFUNDED',
    'a win for a refunded bet is refused',
  );

  // By round: two bets of one round, refunded together; the same round id in another game is separate.
  const round = nextId('round');
  await ledger.bet(game(user, { round_id: round, amount: '5.00' }));
  await ledger.bet(game(user, { round_id: round, amount: '7.00' }));
  await ledger.bet(game(user, { round_id: round, amount: '1.00', game_session_id: 'other-game' }));
  t.equal(await balanceOf(user), '87.00');
  t.equal(await outcomeCode(ledger.refund(game(user, { round_id: round, amount: '12.01' }))), 'REFUND_EXCEEDS_BET');
  t.equal((await ledger.refund(game(user, { round_id: round, amount: '12.00' }))).balance, '99.00');
  t.equal(await outcomeCode(ledger.refund(game(user, { round_id: round, amount: '0.01' }))), 'REFUND_EXCEEDS_BET');

  // A refund naming another player's bet is refused and moves nothing.
  const other = await fundedPlayer();
  const otherBet = game(other);
  await ledger.bet(otherBet);
  t.equal(await outcomeCode(ledger.refund(game(user, { bet_tx_id: otherBet.tx_id }))), 'INVALID_REQUEST');
  t.equal(await balanceOf(other), '90.00');
  t.equal(await balanceOf(user), '99.00');
});

t.test('refund before its bet leaves a tombstone: the bet and its win are refused later', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  const refund = await ledger.refund(game(user, { bet_tx_id: bet.tx_id, round_id: bet.round_id }));
  t.equal(refund.balance, '100.00', 'answered 200 with the unchanged balance');
  t.equal(await outcomeCode(ledger.bet(bet)), 'BET_REFUNDED');
  t.equal(await outcomeCode(ledger.bet(bet)), 'BET_REFUNDED', 'and its duplicates too');
  t.equal(await outcomeCode(ledger.win(game(user, { bet_tx_id: bet.tx_id }))), 'BET_REFUNDED');
  t.equal(await balanceOf(user), '100.00');

  // The same by round: no bet yet, the round is tombstoned.
  const round = nextId('round');
  t.equal((await ledger.refund(game(user, { round_id: round }))).balance, '100.00');
  t.equal(await outcomeCode(ledger.bet(game(user, { round_id: round }))), 'BET_REFUNDED');
  t.equal((await ledger.bet(game(user, { round_id: round, game_session_id: 'other-game' }))).balance, '90.00');
});

t.test(
  "a win naming another account's bet is INVALID_REQUEST, one naming a bet not applied BET_NOT_APPLIED",
  async (t) => {
    const user = await fundedPlayer();
    const other = await fundedPlayer();
    await ledger.deposit({ tx_id: nextId('dep'), user_id: user, currency: 'EUR', amount: '100.00' });
    const othersBet = game(other);
    await ledger.bet(othersBet);
    const ownBet = game(user);
    await ledger.bet(ownBet);

    const stolen = game(user, { amount: '50.00', bet_tx_id: othersBet.tx_id });
    t.equal(await outcomeCode(ledger.win(stolen)), 'INVALID_REQUEST', "another player's bet");
    t.equal(await outcomeCode(ledger.win(stolen)), 'INVALID_REQUEST', 'its copy replays the decline');
    const euros = game(user, { currency: 'EUR', amount: '50.00', bet_tx_id: ownBet.tx_id });
    t.equal(await outcomeCode(ledger.win(euros)), 'INVALID_REQUEST', 'the bet of another currency');
    t.equal(
      await outcomeCode(ledger.refund(game(user, { currency: 'EUR', bet_tx_id: ownBet.tx_id }))),
      'INVALID_REQUEST',
      'a refund too',
    );

    const declined = game(user, { amount: '1000.00' });
    t.equal(await outcomeCode(ledger.bet(declined)), 'INSUFFICIENT_FUNDS');
    const winOfDeclined = game(user, { amount: '50.00', bet_tx_id: declined.tx_id });
    t.equal(await outcomeCode(ledger.win(winOfDeclined)), 'BET_NOT_APPLIED', 'a declined bet');
    t.equal(await outcomeCode(ledger.win(winOfDeclined)), 'BET_NOT_APPLIED', 'its copy replays the decline');
    const stored = await ledger.getTransaction({ kind: 'win', tx_id: winOfDeclined.tx_id });
    t.same([stored.status, stored.error_code], ['declined', 'BET_NOT_APPLIED'], 'stored like any decline');

    const reversed = game(user);
    await ledger.bet(reversed);
    await ledger.voidTransaction({ kind: 'bet', tx_id: reversed.tx_id, error_code: 'WALLET_TIMEOUT' });
    t.equal(await outcomeCode(ledger.win(game(user, { bet_tx_id: reversed.tx_id }))), 'BET_NOT_APPLIED', 'voided');
    const neverSeen = nextId('tx');
    await ledger.voidTransaction({ kind: 'bet', tx_id: neverSeen, error_code: 'WALLET_UNAVAILABLE' });
    t.equal(await outcomeCode(ledger.win(game(user, { bet_tx_id: neverSeen }))), 'BET_NOT_APPLIED', 'voided unseen');

    t.equal(await balanceOf(user), '90.00', 'no win paid');
    t.equal(await balanceOf(user, 'EUR'), '100.00');
    t.equal(await balanceOf(other), '90.00');
    t.equal((await ledger.win(game(user, { amount: '1.00', bet_tx_id: nextId('tx') }))).balance, '91.00', 'unseen bet');
    t.equal((await ledger.win(game(user, { amount: '1.00' }))).balance, '92.00', 'no bet_tx_id');
    t.equal((await ledger.win(game(user, { amount: '1.00', bet_tx_id: ownBet.tx_id }))).balance, '93.00', 'own bet');
  },
);

t.test(
  'a bet answered with an error that reached the ledger after its refund: its void leaves the error',
  async (t) => {
    // Found by the chaos soak (seed 109): the gateway answered the bet 503; PHIA refunded it (tombstone);
    // the bet's call then reached the wallet and met the tombstone (BET_REFUNDED); its void came last.
    const user = await fundedPlayer();
    const bet = game(user, { attempt_id: 'attempt-late' });
    await ledger.refund(game(user, { bet_tx_id: bet.tx_id, round_id: bet.round_id }));
    t.equal(await outcomeCode(ledger.bet(bet)), 'BET_REFUNDED');
    const voided = await ledger.voidTransaction({
      kind: 'bet',
      tx_id: bet.tx_id,
      error_code: 'WALLET_UNAVAILABLE',
      attempt_id: 'attempt-late',
    });
    t.equal(voided.outcome, 'decline_replaced');
    t.equal(await outcomeCode(ledger.bet(bet)), 'WALLET_UNAVAILABLE', 'copies get the answer PHIA got');
    t.equal(
      await outcomeCode(ledger.win(game(user, { bet_tx_id: bet.tx_id }))),
      'BET_REFUNDED',
      'its win is still refused',
    );
    t.equal(await balanceOf(user), '100.00');
  },
);

t.test('a bet answered with an error, then refunded, then voided: copies replay the error it got', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  // The gateway answered the bet 504 (it never reached the ledger); PHIA refunded it; the void comes last.
  await ledger.refund(game(user, { bet_tx_id: bet.tx_id, round_id: bet.round_id }));
  const voided = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' });
  t.equal(voided.outcome, 'tombstoned');
  t.equal(await outcomeCode(ledger.bet(bet)), 'WALLET_TIMEOUT', 'the answer PHIA got, not BET_REFUNDED');
  t.equal(await outcomeCode(ledger.bet(bet)), 'WALLET_TIMEOUT', 'for every copy');
  t.equal(await outcomeCode(ledger.win(game(user, { bet_tx_id: bet.tx_id }))), 'BET_REFUNDED', 'its win is refused');
  t.equal(await balanceOf(user), '100.00');
});

t.test("a void that gives a refund's tombstone its error claims it for the void's content", async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  await ledger.refund(game(user, { bet_tx_id: bet.tx_id, round_id: bet.round_id }));
  // The bet was answered 503 without the idempotency store (N1/N2), then a variant came.
  const first = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: bet.tx_id,
    error_code: 'WALLET_UNAVAILABLE',
    fingerprint: betPrint(bet),
    attempt_id: 'v-1',
  });
  t.same([first.outcome, first.error_code], ['tombstoned', 'WALLET_UNAVAILABLE']);
  const variant = { ...bet, amount: '11.00' };
  const other = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: bet.tx_id,
    error_code: 'WALLET_UNAVAILABLE',
    fingerprint: betPrint(variant),
    attempt_id: 'v-2',
  });
  t.equal(other.outcome, 'not_matching', 'the variant is a mismatch, not the first content');
  t.equal(await outcomeCode(ledger.bet(variant)), 'IDEMPOTENCY_MISMATCH');
  t.equal(await outcomeCode(ledger.bet(bet)), 'WALLET_UNAVAILABLE', "copies of the bet get the void's error");
  t.equal(await balanceOf(user), '100.00');
});

t.test('void reverses an applied request and tombstones an unseen one', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  await ledger.bet(bet);
  const voided = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' });
  t.same([voided.outcome, voided.balance], ['reversed', '100.00']);
  t.equal((await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id })).outcome, 'already_voided');
  t.equal(await outcomeCode(ledger.bet(bet)), 'WALLET_TIMEOUT', 'the duplicate replays the answer PHIA got');
  t.equal(await balanceOf(user), '100.00');

  const unseen = game(user);
  t.equal(
    (await ledger.voidTransaction({ kind: 'bet', tx_id: unseen.tx_id, error_code: 'WALLET_UNAVAILABLE' })).outcome,
    'tombstoned',
  );
  t.equal(await outcomeCode(ledger.bet(unseen)), 'WALLET_UNAVAILABLE', 'a late bet never applies');
  t.equal(await balanceOf(user), '100.00');

  const declined = game(user, { amount: '1000.00' });
  await outcomeCode(ledger.bet(declined));
  t.equal((await ledger.voidTransaction({ kind: 'bet', tx_id: declined.tx_id })).outcome, 'declined');

  // A decline whose answer never reached the gateway (it answered 503): the ledger takes the 503, so
  // that every copy gets what PHIA got. Another attempt's decline (answered 402 to it) stays.
  const lostDecline = game(user, { amount: '1000.00', attempt_id: 'attempt-lost' });
  t.equal(await outcomeCode(ledger.bet(lostDecline)), 'INSUFFICIENT_FUNDS');
  const otherVoid = { kind: 'bet', tx_id: lostDecline.tx_id, error_code: 'WALLET_UNAVAILABLE' };
  t.equal((await ledger.voidTransaction({ ...otherVoid, attempt_id: 'attempt-other' })).outcome, 'declined');
  t.equal(await outcomeCode(ledger.bet(lostDecline)), 'INSUFFICIENT_FUNDS', "another attempt's void changes nothing");
  t.equal((await ledger.voidTransaction({ ...otherVoid, attempt_id: 'attempt-lost' })).outcome, 'decline_replaced');
  t.equal(await outcomeCode(ledger.bet(lostDecline)), 'WALLET_UNAVAILABLE', 'copies replay the answer PHIA got');
  t.equal((await ledger.voidTransaction({ ...otherVoid, attempt_id: 'attempt-lost' })).outcome, 'already_voided');
  t.equal(await balanceOf(user), '100.00');

  // Wins and refunds are reversed too; a refund's void gives the bet back its refundable amount.
  const win = game(user, { amount: '4.00' });
  await ledger.win(win);
  t.equal((await ledger.voidTransaction({ kind: 'win', tx_id: win.tx_id })).balance, '100.00');
  const bet2 = game(user, { amount: '20.00' });
  await ledger.bet(bet2);
  const refund = game(user, { amount: '20.00', bet_tx_id: bet2.tx_id });
  await ledger.refund(refund);
  t.equal((await ledger.voidTransaction({ kind: 'refund', tx_id: refund.tx_id })).balance, '80.00');
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: bet2.tx_id })).refunded_amount, '0.00');
  t.equal(await outcomeCode(ledger.voidTransaction({ kind: 'nonsense', tx_id: 'x' })), 'INVALID_REQUEST');
});

t.test('a bet and its refund both voided leave the balance as it was, in either order', async (t) => {
  for (const order of [
    ['bet', 'refund'],
    ['refund', 'bet'],
  ] as const) {
    const user = await fundedPlayer();
    const bet = game(user, { amount: '10.00' });
    await ledger.bet(bet);
    const refund = game(user, { amount: '4.00', bet_tx_id: bet.tx_id, round_id: bet.round_id });
    await ledger.refund(refund);
    // Both were applied but answered with errors: each one's void undoes it.
    for (const kind of order) {
      const voided = await ledger.voidTransaction({ kind, tx_id: kind === 'bet' ? bet.tx_id : refund.tx_id });
      t.equal(voided.outcome, 'reversed', `${order.join(' then ')}: ${kind} reversed`);
    }
    t.equal(await balanceOf(user), '100.00', `${order.join(' then ')}: as before the bet`);
  }
  t.same(await ledger.checkBooks(), { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
});

t.test('a void carrying a fingerprint only touches the request it was meant for', async (t) => {
  const user = await fundedPlayer();
  const answered = game(user); // the request the gateway answered with an error
  const fingerprint = moneyFingerprint('bet', {
    user_id: user,
    currency: 'USD',
    amount: '10.00',
    round_id: answered.round_id as string,
    game_session_id: answered.game_session_id as string,
    bet_tx_id: '',
  });
  // Another request under the same key got in first (e.g. the idempotency cache was lost).
  const other = { ...answered, amount: '3.00' };
  await ledger.bet(other);
  const voided = await ledger.voidTransaction({ kind: 'bet', tx_id: answered.tx_id, fingerprint });
  t.equal(voided.outcome, 'not_matching');
  t.equal(await balanceOf(user), '97.00', 'the other request stands');

  // Void first, with the fingerprint: the answered request replays the error, other content is a mismatch.
  const early = game(user);
  const earlyPrint = moneyFingerprint('bet', {
    user_id: user,
    currency: 'USD',
    amount: '10.00',
    round_id: early.round_id as string,
    game_session_id: early.game_session_id as string,
    bet_tx_id: '',
  });
  t.equal(
    (
      await ledger.voidTransaction({
        kind: 'bet',
        tx_id: early.tx_id,
        fingerprint: earlyPrint,
        error_code: 'WALLET_UNAVAILABLE',
      })
    ).outcome,
    'tombstoned',
  );
  t.equal(await outcomeCode(ledger.bet(early)), 'WALLET_UNAVAILABLE');
  t.equal(await outcomeCode(ledger.bet({ ...early, amount: '1.00' })), 'IDEMPOTENCY_MISMATCH');
  t.equal(await balanceOf(user), '97.00');
});

t.test("a refusal's tombstone claims no content until a void names the request answered with it", async (t) => {
  const user = await fundedPlayer();
  const owner = game(user);
  // The gateway refused a request without its store: a void without fingerprint.
  const refusal = await ledger.voidTransaction({ kind: 'bet', tx_id: owner.tx_id, error_code: 'WALLET_UNAVAILABLE' });
  t.equal(refusal.outcome, 'tombstoned');
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: owner.tx_id })).fingerprint, '', 'unclaimed');
  // The owner was answered 504 elsewhere; its void names it.
  const named = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: owner.tx_id,
    error_code: 'WALLET_TIMEOUT',
    fingerprint: betPrint(owner),
  });
  t.equal(named.outcome, 'already_voided');
  const record = await ledger.getTransaction({ kind: 'bet', tx_id: owner.tx_id });
  t.equal(record.fingerprint, betPrint(owner), 'the row is the named request now');
  t.equal(record.error_code, 'WALLET_TIMEOUT', 'with the error that request was answered');
  t.equal(await outcomeCode(ledger.bet(owner)), 'WALLET_TIMEOUT', 'its copies replay its answer');
  t.equal(await outcomeCode(ledger.bet({ ...owner, amount: '1.00' })), 'IDEMPOTENCY_MISMATCH');
  // A later void for other content changes nothing.
  const variant = { ...owner, amount: '2.00' };
  const late = await ledger.voidTransaction({ kind: 'bet', tx_id: owner.tx_id, fingerprint: betPrint(variant) });
  t.equal(late.outcome, 'not_matching');
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: owner.tx_id })).fingerprint, betPrint(owner));
  t.equal(await balanceOf(user), '100.00', 'nothing moved');
});

t.test('a refusal names the refused content: other content is a mismatch, the refused one claims it', async (t) => {
  const user = await fundedPlayer();
  const refusedRequest = game(user);
  const refusal = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: refusedRequest.tx_id,
    error_code: 'WALLET_UNAVAILABLE',
    fingerprint: betPrint(refusedRequest),
    refusal: true,
  });
  t.equal(refusal.outcome, 'tombstoned');
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: refusedRequest.tx_id })).fingerprint, '', 'unclaimed');
  // A variant sent next (its gateway has the store again) cannot take the key.
  t.equal(await outcomeCode(ledger.bet({ ...refusedRequest, amount: '3.00' })), 'IDEMPOTENCY_MISMATCH');
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: refusedRequest.tx_id })).fingerprint, '');
  // A copy of the refused request gets its refusal, and claims the key.
  t.equal(await outcomeCode(ledger.bet(refusedRequest)), 'WALLET_UNAVAILABLE');
  t.equal(
    (await ledger.getTransaction({ kind: 'bet', tx_id: refusedRequest.tx_id })).fingerprint,
    betPrint(refusedRequest),
  );
  t.equal(await balanceOf(user), '100.00', 'nothing moved');
});

t.test('a void naming its attempt undoes only what that attempt applied', async (t) => {
  const user = await fundedPlayer();
  // Attempt a-1 applied and was answered 200; a duplicate (attempt a-2) was answered with an error.
  const bet = game(user, { attempt_id: 'a-1' });
  await ledger.bet(bet);
  const kept = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, attempt_id: 'a-2' });
  t.equal(kept.outcome, 'kept');
  t.equal(await balanceOf(user), '90.00', 'the 200 stands');
  t.equal((await ledger.getTransaction({ kind: 'bet', tx_id: bet.tx_id })).status, 'applied');
  // The attempt that applied it was answered with an error itself: its void reverses it.
  const reversed = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, attempt_id: 'a-1' });
  t.equal(reversed.outcome, 'reversed');
  t.equal(await balanceOf(user), '100.00');
});

t.test("a void with a horizon undoes another attempt's outcome committed after it", async (t) => {
  const user = await fundedPlayer();
  // Attempt h-1 applied it and its gateway died before storing the 200; a copy (h-2) that found the
  // key free in the store was answered with an error: no 200 of this key left after the horizon.
  const bet = game(user, { attempt_id: 'h-1' });
  await ledger.bet(bet);
  const { rows } = await db.query<{ ms: string }>(
    `SELECT floor(extract(epoch FROM created_at) * 1000)::bigint::text AS ms FROM transactions WHERE tx_id = $1`,
    [bet.tx_id],
  );
  const committedMs = BigInt(rows[0]!.ms);
  const before = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: bet.tx_id,
    attempt_id: 'h-2',
    unanswered_after_ms: String(committedMs + 1000n),
  });
  t.equal(before.outcome, 'kept', 'committed before the horizon: its 200 may have left and expired');
  t.equal(await balanceOf(user), '90.00');
  const after = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: bet.tx_id,
    error_code: 'WALLET_UNAVAILABLE',
    attempt_id: 'h-2',
    unanswered_after_ms: String(committedMs - 1000n),
  });
  t.same([after.outcome, after.error_code], ['reversed', 'WALLET_UNAVAILABLE'], 'committed after it: undone');
  t.equal(await balanceOf(user), '100.00', 'the money is back');
  t.equal(await outcomeCode(ledger.bet({ ...bet, attempt_id: 'h-3' })), 'WALLET_UNAVAILABLE', 'copies get the error');

  // A decline another attempt committed after the horizon never left either: the void's error replaces it.
  const poor = await fundedPlayer('1.00');
  const declined = game(poor, { attempt_id: 'd-1' });
  t.equal(await outcomeCode(ledger.bet(declined)), 'INSUFFICIENT_FUNDS');
  const kept = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: declined.tx_id,
    attempt_id: 'd-2',
    unanswered_after_ms: String(Date.now() + 60_000),
  });
  t.same([kept.outcome, kept.error_code], ['declined', 'INSUFFICIENT_FUNDS'], 'before the horizon: it stands');
  const replaced = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: declined.tx_id,
    error_code: 'WALLET_TIMEOUT',
    attempt_id: 'd-2',
    unanswered_after_ms: String(committedMs - 1000n),
  });
  t.same([replaced.outcome, replaced.error_code], ['decline_replaced', 'WALLET_TIMEOUT'], 'after it: replaced');
  t.equal(await outcomeCode(ledger.bet({ ...declined, attempt_id: 'd-3' })), 'WALLET_TIMEOUT');
  t.equal(await balanceOf(poor), '1.00', 'nothing moved');

  await t.rejects(
    ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, unanswered_after_ms: '-5' }),
    { code: 'INVALID_REQUEST', detail: /unanswered_after_ms/ },
    'a horizon that is not epoch ms is refused',
  );
});

t.test('the books balance after all of the above', async (t) => {
  const report = await ledger.checkBooks();
  t.same(report, { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
});

t.test('a void answers the error its row answers after it, whichever void came first', async (t) => {
  const user = await fundedPlayer();
  const bet = game(user);
  await ledger.bet(bet);
  const first = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_UNAVAILABLE' });
  t.same([first.outcome, first.error_code], ['reversed', 'WALLET_UNAVAILABLE']);
  const later = await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' });
  t.same([later.outcome, later.error_code], ['already_voided', 'WALLET_UNAVAILABLE'], 'the first void decided it');
  const applied = game(user);
  await ledger.bet({ ...applied, attempt_id: 'a-200' });
  const kept = await ledger.voidTransaction({
    kind: 'bet',
    tx_id: applied.tx_id,
    error_code: 'WALLET_TIMEOUT',
    attempt_id: 'a-504',
  });
  t.same([kept.outcome, kept.error_code], ['kept', ''], 'an applied row answers no error');
});
