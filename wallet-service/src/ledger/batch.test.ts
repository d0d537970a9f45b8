/**
 * Money requests that wait together, for one account or for a flight, go to PostgreSQL as one call
 * (wallet_money_batch): one round trip, one commit. Any failure of the batch commits nothing, and each
 * request is then made alone, with the answer it would have had alone.
 */
import t from 'tap';
import pg from 'pg';
import { openTestLedger, outcomeCode, sleep } from '../test-helpers/ledger.js';
import { MONEY_FLIGHTS } from './core.js';

const { ledger, schema, close } = await openTestLedger('batch');
t.teardown(close);

/** Statements sent, by prepared statement name. */
const sent = new Map<string, number>();
type Query = (this: pg.Client, ...args: unknown[]) => unknown;
const clientPrototype = pg.Client.prototype as unknown as { query: Query };
const original = clientPrototype.query;
clientPrototype.query = function (this: pg.Client, ...args: unknown[]) {
  const name = (args[0] as { name?: unknown } | null)?.name;
  if (typeof name === 'string') sent.set(name, (sent.get(name) ?? 0) + 1);
  return original.apply(this, args);
};
t.teardown(() => {
  clientPrototype.query = original;
});

let counter = 0;
const id = (prefix: string) => `${prefix}-${++counter}`;

async function fundedPlayer(amount = '100.00'): Promise<string> {
  const user = id('player');
  await ledger.deposit({ tx_id: id('dep'), user_id: user, currency: 'USD', amount });
  return user;
}

const bet = (user: string, txId = id('bet'), amount = '1.00') =>
  ledger.bet({ tx_id: txId, user_id: user, currency: 'USD', amount, round_id: `round-${txId}`, game_session_id: 'gs' });

/**
 * Holds the players' row locks while `start` sends requests, until `blocked` of them wait at the locks
 * (the rest then wait in the wallet), then lets go.
 */
async function behindTheLocks<T>(users: string[], blocked: number, start: () => T): Promise<T> {
  const holder = await schema.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = ANY ($1) FOR UPDATE`, [users]);
    const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    const started = start();
    for (let i = 0; i < 200; i++) {
      const found = await schema.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))',
        [pid],
      );
      if ((found.rows[0]?.n ?? 0) >= blocked) break;
      await sleep(10);
    }
    await sleep(50);
    await holder.query('ROLLBACK');
    return started;
  } finally {
    holder.release();
  }
}

/** One player's row lock: the first of its requests waits there, the rest in the account gate. */
const behindTheLock = <T>(user: string, start: () => T) => behindTheLocks([user], 1, start);

async function balanceOf(user: string): Promise<string> {
  return (await ledger.getBalance({ user_id: user, currency: 'USD' })).balance;
}

t.test('bets that wait for one account together reach PostgreSQL as one call, and all apply', async (t) => {
  const user = await fundedPlayer();
  sent.clear();
  const answers = await behindTheLock(user, () => Array.from({ length: 10 }, () => bet(user)));
  const balances = (await Promise.all(answers)).map((answer) => answer.balance).sort();
  t.same(
    balances,
    Array.from({ length: 10 }, (_, i) => `${90 + i}.00`),
    'each bet answered the balance right after it',
  );
  t.equal(await balanceOf(user), '90.00');
  t.equal(sent.get('phia_wallet_money'), 1, 'one went alone (the call let through to the lock)');
  t.equal(sent.get('phia_wallet_money_batch'), 1, 'the nine that waited in the wallet went as one');
});

t.test('a batch that fails commits nothing, and each of its requests then goes alone', async (t) => {
  const user = await fundedPlayer();
  const clash = id('bet');
  sent.clear();
  const answers = await behindTheLock(user, () => [
    bet(user),
    bet(user),
    bet(user),
    bet(user, clash),
    bet(user, clash, '2.00'),
    bet(user),
  ]);
  const codes = await Promise.all(answers.map((answer) => outcomeCode(answer)));
  t.same(codes, ['OK', 'OK', 'OK', 'OK', 'IDEMPOTENCY_MISMATCH', 'OK'], 'only the clashing request is refused');
  t.equal(await balanceOf(user), '95.00', 'the five others applied once each');
  t.equal(sent.get('phia_wallet_money_batch'), 1, 'the five waiters went as one batch');
  t.equal(sent.get('phia_wallet_money'), 6, 'one alone before, then the five of the failed batch alone');
});

t.test('the same request twice in one batch applies once, and both get its answer', async (t) => {
  const user = await fundedPlayer();
  const twice = id('bet');
  sent.clear();
  const answers = await behindTheLock(user, () => [bet(user), bet(user), bet(user, twice), bet(user, twice)]);
  const [, , first, second] = await Promise.all(answers);
  t.same(first, second, 'one answer');
  t.equal(await balanceOf(user), '97.00');
  t.equal(sent.get('phia_wallet_money_batch'), 1);
});

t.test('a batch whose earliest deadline has passed by its end commits none of its requests', async (t) => {
  const user = await fundedPlayer();
  const [first, second] = [id('bet'), id('bet')];
  const late = Date.now() - 1000;
  const call = schema.pool.query(
    `SELECT * FROM wallet_money_batch($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[],
      $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::integer[], $14::bigint[])`,
    [
      ['bet', 'bet'],
      [first, second],
      [user, user],
      ['USD', 'USD'],
      ['1.00', '1.00'],
      ['r1', 'r2'],
      ['gs', 'gs'],
      [null, null],
      [null, null],
      [null, null],
      [null, null],
      ['fp1', 'fp2'],
      [10_000, 10_000],
      [null, late],
    ],
  );
  await t.rejects(call, { code: 'PH002' });
  const stored = await schema.pool.query('SELECT 1 FROM transactions WHERE tx_id = ANY ($1)', [[first, second]]);
  t.equal(stored.rowCount, 0, 'neither request was stored');
  t.equal(await balanceOf(user), '100.00');
});

t.test('bets of many players that come while every flight is out leave as one statement', async (t) => {
  const held = await Promise.all(Array.from({ length: MONEY_FLIGHTS }, () => fundedPlayer()));
  const others = await Promise.all(Array.from({ length: 6 }, () => fundedPlayer()));
  sent.clear();
  const answers = await behindTheLocks(held, MONEY_FLIGHTS, () => [
    ...held.map((user) => bet(user)),
    ...others.map((user) => bet(user)),
  ]);
  t.same(
    (await Promise.all(answers)).map((answer) => answer.balance),
    Array.from({ length: MONEY_FLIGHTS + 6 }, () => '99.00'),
    'every bet applied once',
  );
  t.equal(sent.get('phia_wallet_money'), MONEY_FLIGHTS, 'one alone per flight, each waiting at a held lock');
  t.equal(sent.get('phia_wallet_money_batch'), 1, 'the six players that came then went as one statement');
  for (const user of [...held, ...others]) t.equal(await balanceOf(user), '99.00');
});

t.test('a shared statement does not wait for an account held elsewhere: the other players go on', async (t) => {
  const held = await Promise.all(Array.from({ length: MONEY_FLIGHTS }, () => fundedPlayer()));
  const stuck = await fundedPlayer();
  const others = await Promise.all(Array.from({ length: 5 }, () => fundedPlayer()));
  const stuckHolder = await schema.pool.connect();
  t.teardown(() => stuckHolder.release());
  await stuckHolder.query('BEGIN');
  await stuckHolder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 FOR UPDATE`, [stuck]);
  sent.clear();
  const [stuckBet, ...otherBets] = await behindTheLocks(held, MONEY_FLIGHTS, () => {
    held.forEach((user) => void bet(user));
    return [bet(stuck), ...others.map((user) => bet(user))];
  });
  const answers = await Promise.all(otherBets);
  t.same(
    answers.map((answer) => answer.balance),
    others.map(() => '99.00'),
    'the five others applied while the sixth account is still held',
  );
  t.equal(sent.get('phia_wallet_money_batch'), 1, 'they came as one statement, which gave up on the held account');
  await stuckHolder.query('ROLLBACK');
  t.equal((await stuckBet).balance, '99.00', 'the held account’s bet applies once its lock is free');
});
