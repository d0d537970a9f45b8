/**
 * One player's concurrent requests reach PostgreSQL one call at a time (the account gate): the rest
 * wait in the wallet, not as backends sleeping on the account's row lock. All of them still apply.
 */
import t from 'tap';
import { openTestLedger, sleep } from '../test-helpers/ledger.js';

const { ledger, schema, close } = await openTestLedger('hot_account');
t.teardown(close);

t.test("a player's bets wait for the row lock one at a time, then all apply", async (t) => {
  const user = 'hot-player';
  await ledger.deposit({ tx_id: 'hot-dep', user_id: user, currency: 'USD', amount: '100.00' });
  const holder = await schema.pool.connect();
  t.teardown(() => holder.release());
  await holder.query('BEGIN');
  await holder.query(`SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 FOR UPDATE`, [user]);
  const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;

  const bets = Array.from({ length: 10 }, (_, i) =>
    ledger.bet({
      tx_id: `hot-bet-${i}`,
      user_id: user,
      currency: 'USD',
      amount: '1.00',
      round_id: 'r',
      game_session_id: 'g',
    }),
  );
  // Backends blocked by the holder: on its row lock, or queued behind one that is.
  const blocked = async () => {
    const found = await schema.pool.query<{ n: number }>(
      `WITH RECURSIVE waiting(pid) AS (
         SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))
         UNION SELECT a.pid FROM pg_stat_activity a JOIN waiting w ON w.pid = ANY (pg_blocking_pids(a.pid)))
       SELECT count(*)::int AS n FROM waiting`,
      [holderPid],
    );
    return found.rows[0]?.n ?? 0;
  };
  for (let i = 0; i < 100 && (await blocked()) < 1; i++) await sleep(20);
  // Without the gate all ten would be there by now.
  await sleep(300);
  t.equal(await blocked(), 1, 'one request waits at the lock, the other nine in the wallet');

  await holder.query('ROLLBACK');
  const answers = await Promise.all(bets);
  t.equal(answers.length, 10);
  t.equal((await ledger.getBalance({ user_id: user, currency: 'USD' })).balance, '90.00', 'all ten applied');
});
