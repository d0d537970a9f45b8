import t from 'tap';
import { createTestSchema } from '../../../test/helpers/postgres.js';
import { openDatabase } from './index.js';
import { migrate, MIGRATIONS } from './migrations.js';

t.test('migrations run once, are safe to run again, and concurrently', async (t) => {
  const schema = await createTestSchema('migrate');
  t.teardown(() => schema.drop());
  const [a, b] = await Promise.all([
    openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema }),
    openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema }),
  ]);
  t.teardown(async () => {
    await a?.close();
    await b?.close();
  });
  t.same(await migrate(a), [], 'nothing left to apply');
  const versions = await schema.pool.query('SELECT version FROM schema_migrations ORDER BY version');
  t.same(
    versions.rows.map((row: { version: number }) => row.version),
    MIGRATIONS.map((migration) => migration.version),
  );
});
