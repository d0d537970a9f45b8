import { randomBytes } from 'node:crypto';
import t from 'tap';
import { createTestSchema } from '../../../test/helpers/postgres.js';
import { openDatabase } from './index.js';

t.test('the pool reports its application_name, so its backends can be told apart', async (t) => {
  const schema = await createTestSchema('appname');
  t.teardown(() => schema.drop());
  const name = `phia-wallet-test-${randomBytes(4).toString('hex')}`;
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema, applicationName: name });
  t.teardown(() => db.close());
  const seen = await db.query<{ application_name: string }>('SELECT current_setting($1) AS application_name', [
    'application_name',
  ]);
  t.equal(seen.rows[0]?.application_name, name);
  const backends = await schema.pool.query(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
    [name],
  );
  t.ok((backends.rows[0] as { n: number }).n >= 1, 'visible in pg_stat_activity');
});
