import t from 'tap';
import { formatAmount, parseAmount } from '@phia/proto';
import { openTestLedger, outcomeCode, sleep } from '../test-helpers/ledger.js';
import { DeadlineExceededError } from './errors.js';

/** Delays chosen per test: the hook looks the operation up here right before COMMIT. */
const commitDelays = new Map<string, number>();
/** Gates: the operation stops before COMMIT (still holding its locks) until the test opens it. */
const commitGates = new Map<string, { entered: () => void; opened: Promise<void> }>();
const { ledger, schema, close } = await openTestLedger('concurrency', {
  beforeCommit: async (operation) => {
    const delay = commitDelays.get(operation);
    if (delay !== undefined) await sleep(delay);
    const gate = commitGates.get(operation);
    if (gate) {
      commitGates.delete(operation);
      gate.entered();
      await gate.opened;
    }
  },
});

/** Arms a gate for the next `operation`; returns when it is reached and how to open it. */
function armGate(operation: string): { reached: Promise<void>; open: () => void } {
  let entered!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (entered = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  commitGates.set(operation, { entered, opened });
  return { reached, open };
}
t.teardown(close);

let counter = 0;
const id = (prefix: string) => `${prefix}-${++counter}`;

async function fundedPlayer(amount: string): Promise<string> {
  const user = id('user');
  await ledger.deposit({ tx_id: id('dep'), user_id: user, currency: 'USD', amount });
  return user;
}

const balanceOf = async (user: string) => (await ledger.getBalance({ user_id: user, currency: 'USD' })).balance;

t.test('the same tx_id sent 50 times at once applies once and all get the same outcome', async (t) => {
  const user = await fundedPlayer('100.00');
  const bet = { tx_id: id('bet'), user_id: user, currency: 'USD', amount: '7.00', round_id: 'r', game_session_id: 'g' };
  const answers = await Promise.all(Array.from({ length: 50 }, () => ledger.bet(bet)));
  t.equal(new Set(answers.map((answer) => JSON.stringify(answer))).size, 1, 'one answer for all 50');
  t.equal(answers[0]?.balance, '93.00');
  t.equal(await balanceOf(user), '93.00', 'debited once');

  // The same for a decline.
  const tooBig = { ...bet, tx_id: id('bet'), amount: '1000.00' };
  const codes = await Promise.all(Array.from({ length: 50 }, () => outcomeCode(ledger.bet(tooBig))));
  t.same(new Set(codes), new Set(['INSUFFICIENT_FUNDS']));
});

t.test('concurrent different requests on one account never lose an update', async (t) => {
  const user = await fundedPlayer('1000.00');
  const bets = Array.from({ length: 40 }, (_, i) =>
    ledger.bet({
      tx_id: id('bet'),
      user_id: user,
      currency: 'USD',
      amount: '1.25',
      round_id: `r${i}`,
      game_session_id: 'g',
    }),
  );
  const wins = Array.from({ length: 20 }, (_, i) =>
    ledger.win({
      tx_id: id('win'),
      user_id: user,
      currency: 'USD',
      amount: '0.50',
      round_id: `r${i}`,
      game_session_id: 'g',
    }),
  );
  await Promise.all([...bets, ...wins]);
  t.equal(await balanceOf(user), '960.00'); // 1000 - 40 * 1.25 + 20 * 0.50
});

t.test('concurrent bets never overdraw the account', async (t) => {
  const user = await fundedPlayer('10.00');
  const codes = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      outcomeCode(
        ledger.bet({
          tx_id: id('bet'),
          user_id: user,
          currency: 'USD',
          amount: '1.00',
          round_id: `r${i}`,
          game_session_id: 'g',
        }),
      ),
    ),
  );
  t.equal(codes.filter((code) => code === 'OK').length, 10);
  t.equal(codes.filter((code) => code === 'INSUFFICIENT_FUNDS').length, 20);
  t.equal(await balanceOf(user), '0.00');
});

t.test('a refund arriving while its bet is still running waits and reverses it', async (t) => {
  const user = await fundedPlayer('100.00');
  const bet = {
    tx_id: id('bet'),
    user_id: user,
    currency: 'USD',
    amount: '25.00',
    round_id: 'r',
    game_session_id: 'g',
  };
  const gate = armGate('bet');
  const betting = ledger.bet(bet);
  await gate.reached; // the bet holds the account lock and sits before its COMMIT
  const refunding = ledger.refund({ ...bet, tx_id: id('refund'), bet_tx_id: bet.tx_id });
  await sleep(100); // the refund is now waiting for the lock
  gate.open();
  const refund = await refunding;
  t.equal((await betting).balance, '75.00', 'the bet applied first');
  t.equal(refund.balance, '100.00', 'then the refund reversed it');
  t.equal(await balanceOf(user), '100.00');
});

t.test('a bet arriving while its refund is running fails on the tombstone', async (t) => {
  const user = await fundedPlayer('100.00');
  const bet = {
    tx_id: id('bet'),
    user_id: user,
    currency: 'USD',
    amount: '25.00',
    round_id: 'r',
    game_session_id: 'g',
  };
  const gate = armGate('refund');
  const refunding = ledger.refund({ ...bet, tx_id: id('refund'), bet_tx_id: bet.tx_id });
  await gate.reached;
  const betting = outcomeCode(ledger.bet(bet));
  await sleep(100);
  gate.open();
  t.equal(await betting, 'BET_REFUNDED');
  t.equal((await refunding).balance, '100.00');
  t.equal(await balanceOf(user), '100.00', 'never both, never neither');
});

t.test('deadline passed before commit: nothing is applied, and the request can run again', async (t) => {
  const user = await fundedPlayer('100.00');
  const bet = {
    tx_id: id('bet'),
    user_id: user,
    currency: 'USD',
    amount: '10.00',
    round_id: 'r',
    game_session_id: 'g',
  };
  commitDelays.set('bet', 250);
  await t.rejects(ledger.bet(bet, { deadline: Date.now() + 200 }), DeadlineExceededError);
  commitDelays.delete('bet');
  t.equal(await balanceOf(user), '100.00', 'rolled back');
  t.equal(
    await outcomeCode(ledger.getTransaction({ kind: 'bet', tx_id: bet.tx_id })),
    'ACCOUNT_NOT_FOUND',
    'no record',
  );
  await t.rejects(ledger.bet(bet, { deadline: Date.now() + 10 }), DeadlineExceededError, 'too close to even start');
  t.equal((await ledger.bet(bet, { deadline: Date.now() + 2000 })).balance, '90.00');
});

t.test('a lock held past the deadline ends the call by lock_timeout, nothing applied', async (t) => {
  const user = await fundedPlayer('100.00');
  // Another session holds the player's row lock for as long as this test wants.
  const holder = await schema.pool.connect();
  await holder.query('BEGIN');
  await holder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 FOR UPDATE`, [user]);
  try {
    const bet = {
      tx_id: id('bet'),
      user_id: user,
      currency: 'USD',
      amount: '10.00',
      round_id: 'r',
      game_session_id: 'g',
    };
    await t.rejects(ledger.bet(bet, { deadline: Date.now() + 300 }), DeadlineExceededError, 'gave up at its deadline');
    await holder.query('ROLLBACK');
    t.equal(await balanceOf(user), '100.00');
    t.equal(
      await outcomeCode(ledger.getTransaction({ kind: 'bet', tx_id: bet.tx_id })),
      'ACCOUNT_NOT_FOUND',
      'no record',
    );
  } finally {
    holder.release();
  }
});

t.test('randomized operations keep every balance equal to a model and to its ledger entries', async (t) => {
  // A tiny seeded PRNG so a failure can be replayed.
  let seed = Number(process.env.LEDGER_SEED ?? Date.now() % 100000);
  t.comment(`seed ${seed}`);
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const users = await Promise.all(Array.from({ length: 5 }, () => fundedPlayer('50.00')));
  const model = new Map(users.map((user) => [user, parseAmount('50.00', 2)]));
  const bets: { tx_id: string; user: string; left: bigint }[] = [];

  for (let step = 0; step < 300; step++) {
    const user = users[Math.floor(random() * users.length)] as string;
    const amount = BigInt(Math.floor(random() * 2000));
    const text = formatAmount(amount, 2);
    const base = { user_id: user, currency: 'USD', amount: text, round_id: `r${step}`, game_session_id: 'g' };
    const roll = random();
    const balance = model.get(user) as bigint;
    if (roll < 0.45) {
      const tx_id = id('bet');
      const code = await outcomeCode(ledger.bet({ ...base, tx_id }));
      t.equal(code, amount <= balance ? 'OK' : 'INSUFFICIENT_FUNDS');
      if (code === 'OK') {
        model.set(user, balance - amount);
        bets.push({ tx_id, user, left: amount });
      }
    } else if (roll < 0.7) {
      await ledger.win({ ...base, tx_id: id('win') });
      model.set(user, balance + amount);
    } else if (roll < 0.85 && bets.length > 0) {
      const bet = bets[Math.floor(random() * bets.length)] as (typeof bets)[number];
      const part = bet.left === 0n ? 0n : BigInt(Math.floor(random() * Number(bet.left + 1n)));
      const code = await outcomeCode(
        ledger.refund({
          ...base,
          user_id: bet.user,
          tx_id: id('refund'),
          amount: formatAmount(part, 2),
          bet_tx_id: bet.tx_id,
        }),
      );
      t.equal(code, 'OK');
      bet.left -= part;
      model.set(bet.user, (model.get(bet.user) as bigint) + part);
    } else {
      const tx_id = id('dup');
      const first = await outcomeCode(ledger.bet({ ...base, tx_id }));
      const again = await outcomeCode(ledger.bet({ ...base, tx_id }));
      t.equal(again, first, 'duplicate gets the same outcome');
      if (first === 'OK') {
        model.set(user, balance - amount);
        bets.push({ tx_id, user, left: amount });
      }
    }
  }
  for (const user of users) {
    t.equal(await balanceOf(user), formatAmount(model.get(user) as bigint, 2), `${user} matches the model`);
  }
  t.same(await ledger.checkBooks(), { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
});
