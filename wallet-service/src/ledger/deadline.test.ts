/**
 * Deadlines on the one-statement path (no test hooks): the function's lock waits end at the deadline,
 * and its last step refuses to commit once the deadline (less the margin) has passed.
 */
import pg from 'pg';
import t, { type Test } from 'tap';
import { connectionOptions } from '../db/postgres.js';
import { openTestLedger, outcomeCode, sleep } from '../test-helpers/ledger.js';
import { DeadlineExceededError } from './errors.js';

const { ledger, schema, close } = await openTestLedger('deadline');
t.teardown(close);

let counter = 0;
const id = (prefix: string) => `${prefix}-${++counter}`;

async function fundedPlayer(): Promise<string> {
  const user = id('user');
  await ledger.deposit({ tx_id: id('dep'), user_id: user, currency: 'USD', amount: '100.00' });
  return user;
}

const betOf = (user: string) => ({
  tx_id: id('bet'),
  user_id: user,
  currency: 'USD',
  amount: '10.00',
  round_id: 'r',
  game_session_id: 'g',
});

async function nothingStored(t: Test, user: string, txId: string): Promise<void> {
  t.equal((await ledger.getBalance({ user_id: user, currency: 'USD' })).balance, '100.00', 'nothing debited');
  t.equal(await outcomeCode(ledger.getTransaction({ kind: 'bet', tx_id: txId })), 'ACCOUNT_NOT_FOUND', 'no record');
}

t.test('a lock held past the deadline ends the call at the deadline, nothing stored', async (t) => {
  const user = await fundedPlayer();
  const holder = await schema.pool.connect();
  t.teardown(() => holder.release());
  await holder.query('BEGIN');
  await holder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 FOR UPDATE`, [user]);
  const bet = betOf(user);
  await t.rejects(ledger.bet(bet, { deadline: Date.now() + 300 }), DeadlineExceededError);
  await holder.query('ROLLBACK');
  await nothingStored(t, user, bet.tx_id);
});

t.test('work that outlasts the deadline inside the function commits nothing', async (t) => {
  const user = await fundedPlayer();
  // A slow step inside the call: a trigger (this test's schema only) that sleeps on every outcome row.
  await schema.pool.query(`CREATE FUNCTION slow_step() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END $$`);
  await schema.pool.query(
    `CREATE TRIGGER slow_step BEFORE INSERT ON transactions FOR EACH ROW EXECUTE FUNCTION slow_step()`,
  );
  t.teardown(() => schema.pool.query('DROP TRIGGER IF EXISTS slow_step ON transactions'));
  const bet = betOf(user);
  const failure = await ledger.bet(bet, { deadline: Date.now() + 200 }).catch((error: unknown) => error);
  t.type(failure, DeadlineExceededError);
  t.match((failure as Error).message, /deadline passed before commit/, "refused by the function's last step");
  await schema.pool.query('DROP TRIGGER slow_step ON transactions');
  await nothingStored(t, user, bet.tx_id);
  t.equal((await ledger.bet(bet, { deadline: Date.now() + 2000 })).balance, '90.00', 'it can run again');
});

t.test('a deadline too close to start sends nothing', async (t) => {
  const user = await fundedPlayer();
  const bet = betOf(user);
  await t.rejects(ledger.bet(bet, { deadline: Date.now() + 10 }), DeadlineExceededError);
  await nothingStored(t, user, bet.tx_id);
});

t.test('a call whose wallet died while it waited for a lock is rolled back, not committed later', async (t) => {
  const user = await fundedPlayer();
  const holder = await schema.pool.connect();
  t.teardown(() => holder.release());
  await holder.query('BEGIN');
  await holder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 FOR UPDATE`, [user]);
  // The call as the wallet sends it, on a connection with the wallet's settings; then the wallet "dies".
  const wallet = new pg.Client({ connectionString: schema.databaseUrl, options: connectionOptions(schema.schema) });
  wallet.on('error', () => {});
  await wallet.connect();
  const bet = betOf(user);
  const sent = wallet
    .query(
      `SELECT * FROM wallet_money('bet', $1, $2, 'USD', 10, 'r', 'g', NULL, NULL, NULL, NULL, 'print', 10000, NULL)`,
      [bet.tx_id, user],
    )
    .catch(() => undefined);
  await sleep(200);
  (wallet as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await sent;
  await sleep(200);
  await holder.query('ROLLBACK');
  await sleep(300);
  await nothingStored(t, user, bet.tx_id);
});
