import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { createTestSchema } from '../../../test/helpers/postgres.js';
import { isConnectionFailure } from './database.js';
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
