import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import t from 'tap';
import { createTestSchema } from '../../../test/helpers/postgres.js';
import { buildCurrencyTable } from '@phia/proto';
import { toGrpcError } from '../grpc/status.js';
import { DeadlineExceededError } from '../ledger/errors.js';
import { Ledger } from '../ledger/ledger.js';
import { outcomeCode } from '../test-helpers/ledger.js';
import { isConnectionFailure, isPoolTimeout, PoolTimeoutError } from './database.js';
import { openDatabase } from './index.js';

t.test('a backend terminated in the middle of a transaction fails that transaction, not the process', async (t) => {
  // Found by the chaos soak: pg_terminate_backend on a connection checked out for a transaction, while
  // no statement was running, made pg emit 'error' on a client nobody listened to, and the wallet died.
  const schema = await createTestSchema('pgkill');
  t.teardown(() => schema.drop());
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema, poolSize: 2 });
  t.teardown(() => db.close());

  const failure = await db
    .transaction(async (tx) => {
      const pid = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      await schema.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await sleep(200); // the FATAL message arrives while no statement runs
      await tx.query('SELECT 1');
      return 'committed';
    })
    .catch((error: unknown) => error);
  t.type(failure, Error, 'the transaction fails');
  t.ok(isConnectionFailure(failure), 'as a connection failure (the wallet answers WALLET_UNAVAILABLE)');

  // The pool replaces the dead connection: the next transactions work.
  for (let i = 0; i < 3; i++) {
    t.equal(await db.transaction(async (tx) => (await tx.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n), 1);
  }
});

t.test('an error in the instant a client is handed out is kept too', async (t) => {
  // Found by the chaos soak, after the fix above: a backend terminated while its connection was being
  // opened sends its FATAL in the same packet as ReadyForQuery, so the client emits 'error' after the
  // pool stopped listening and before `await pool.connect()` resumes the caller: the wallet died.
  const schema = await createTestSchema('pgacquire');
  t.teardown(() => schema.drop());
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema, poolSize: 2 });
  t.teardown(() => db.close());
  const pool = (db as unknown as { pool: pg.Pool }).pool;
  let inject = true;
  pool.on('acquire', (client) => {
    if (!inject) return;
    inject = false;
    // Runs after the pool dropped its listener, before the awaiting caller gets the client.
    queueMicrotask(() => client.emit('error', new Error('Connection terminated unexpectedly')));
  });
  // Here the connection is in fact fine, so the transaction may succeed; what matters is that the
  // error is handled (an unhandled 'error' event fails this test) and the client is not reused.
  await db.transaction(async (tx) => tx.query('SELECT 1')).catch(() => undefined);
  t.equal(pool.totalCount, 0, 'the client that saw an error was destroyed, not pooled');
  t.equal(await db.transaction(async (tx) => (await tx.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n), 1);
});

t.test('a call waits for a pool connection only until its deadline: WALLET_TIMEOUT, not INTERNAL', async (t) => {
  // Under overload the pool's own wait (3 s) outlasted the caller's deadline, and its "timeout
  // exceeded when trying to connect" was answered INTERNAL.
  const schema = await createTestSchema('pgwait');
  t.teardown(() => schema.drop());
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema, poolSize: 1 });
  t.teardown(() => db.close());
  const ledger = new Ledger(db, { currencies: buildCurrencyTable() });
  await ledger.deposit({ tx_id: 'w-dep', user_id: 'w1', currency: 'USD', amount: '10.00' });
  const bet = { tx_id: 'w-bet', user_id: 'w1', currency: 'USD', amount: '1.00', round_id: 'r', game_session_id: 'g' };
  // A first bet creates the house account (once per currency, outside any deadline).
  t.equal((await ledger.bet({ ...bet, tx_id: 'w-first' })).balance, '9.00');

  // The only connection is busy until released.
  let releaseHolder: () => void = () => undefined;
  const holding = db.transaction(
    () =>
      new Promise<void>((resolve) => {
        releaseHolder = resolve;
      }),
  );
  const betFailure = await ledger.bet(bet, { deadline: Date.now() + 200 }).catch((error: unknown) => error);
  t.type(betFailure, DeadlineExceededError, 'a bet: deadline exceeded');
  t.equal(toGrpcError(betFailure).code, 'WALLET_TIMEOUT');
  const balanceFailure = await ledger
    .getBalance({ user_id: 'w1', currency: 'USD' }, { deadline: Date.now() + 200 })
    .catch((error: unknown) => error);
  t.type(balanceFailure, DeadlineExceededError, 'a balance: deadline exceeded');
  t.equal(toGrpcError(balanceFailure).code, 'WALLET_TIMEOUT');

  releaseHolder();
  await holding;
  t.equal((await ledger.getBalance({ user_id: 'w1', currency: 'USD' })).balance, '9.00', 'nothing was debited');
  t.equal(await outcomeCode(ledger.getTransaction({ kind: 'bet', tx_id: 'w-bet' })), 'ACCOUNT_NOT_FOUND');
  // The connections that came after the callers gave up went back to the pool: it still works.
  t.equal((await ledger.bet({ ...bet, tx_id: 'w-bet-2' }, { deadline: Date.now() + 5000 })).balance, '8.00');
});

t.test("pool timeouts are recognised, ours and pg.Pool's", async (t) => {
  t.ok(isPoolTimeout(new PoolTimeoutError(5)));
  t.ok(isPoolTimeout(new Error('timeout exceeded when trying to connect')));
  t.notOk(isPoolTimeout(new Error('Connection terminated unexpectedly')));
});
