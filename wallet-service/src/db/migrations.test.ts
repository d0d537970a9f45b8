import t from 'tap';
import { MAX_AMOUNT_INTEGER_DIGITS, MAX_BALANCE_INTEGER_DIGITS, MAX_DECIMALS } from '@phia/proto';
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

t.test('an applied migration edited afterwards is refused at start-up, naming the file', async (t) => {
  const schema = await createTestSchema('migrate_edit');
  t.teardown(() => schema.drop());
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema });
  t.teardown(() => db.close());
  const edited = MIGRATIONS.map((migration) =>
    migration.version === 2
      ? { ...migration, sql: `${migration.sql}\n-- edited`, checksum: 'f'.repeat(64) }
      : migration,
  );
  await t.rejects(migrate(db, edited), /sql\/migrations\/0002_attempt_id\.sql was edited after it was applied/);
  t.same(await migrate(db), [], 'the files as shipped still start');
});

t.test('a database migrated before checksums were recorded starts, and its checksums are kept', async (t) => {
  const schema = await createTestSchema('migrate_old');
  t.teardown(() => schema.drop());
  // What the previous wallet left: the four migrations applied, recorded without checksums.
  for (const migration of MIGRATIONS.filter((m) => m.version <= 4)) await schema.pool.query(migration.sql);
  await schema.pool.query(`CREATE TABLE schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  await schema.pool.query(
    `INSERT INTO schema_migrations (version, name) VALUES (1, 'ledger'), (2, 'attempt_id'),
       (3, 'refused_fingerprint'), (4, 'money_limits')`,
  );
  await schema.pool.query(
    `INSERT INTO accounts (owner_kind, user_id, currency, balance) VALUES ('player', 'u', 'USD', 5)`,
  );
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema });
  t.teardown(() => db.close());
  const rows = await schema.pool.query('SELECT version, checksum FROM schema_migrations ORDER BY version');
  t.same(
    rows.rows.filter((row: { version: number }) => row.version <= 4),
    MIGRATIONS.filter((m) => m.version <= 4).map((m) => ({ version: m.version, checksum: m.checksum })),
  );
  const kept = await schema.pool.query(`SELECT balance::text FROM accounts WHERE user_id = 'u'`);
  t.equal(kept.rows[0]?.balance, '5', 'the data is untouched');
});

t.test('the SQL limits are the ones of @phia/proto', async (t) => {
  const schema = await createTestSchema('limits_sql');
  t.teardown(() => schema.drop());
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema });
  t.teardown(() => db.close());
  // The largest value below 10^digits with 18 decimals, and 10^digits itself.
  const largest = (digits: number) => `${'9'.repeat(digits)}.${'9'.repeat(MAX_DECIMALS)}`;
  const past = (digits: number) => `1${'0'.repeat(digits)}`;
  const account = async (balance: string) =>
    schema.pool.query(
      `INSERT INTO accounts (owner_kind, user_id, currency, balance) VALUES ('player', $1, 'USD', $2)`,
      [`u-${balance.length}-${Math.random()}`, balance],
    );
  const transaction = async (amount: string, balanceAfter = '0') =>
    schema.pool.query(
      `INSERT INTO transactions (kind, tx_id, status, amount, balance_after) VALUES ('bet', $1, 'applied', $2, $3)`,
      [`tx-${Math.random()}`, amount, balanceAfter],
    );
  await t.resolves(account(largest(MAX_BALANCE_INTEGER_DIGITS)), 'a player balance of 24 digits');
  await t.rejects(account(past(MAX_BALANCE_INTEGER_DIGITS)), /player_balance_within_limit/);
  await t.resolves(transaction(largest(MAX_AMOUNT_INTEGER_DIGITS), largest(MAX_BALANCE_INTEGER_DIGITS)));
  await t.rejects(transaction(past(MAX_AMOUNT_INTEGER_DIGITS)), /amount_within_limit/);
  await t.rejects(transaction('1', past(MAX_BALANCE_INTEGER_DIGITS)), /balance_after_within_limit/);
  const house = await schema.pool.query(
    `INSERT INTO accounts (owner_kind, user_id, currency, balance) VALUES ('house', '', 'USD', $1) RETURNING id`,
    [`-${past(MAX_BALANCE_INTEGER_DIGITS + 2)}`],
  );
  t.equal(house.rows.length, 1, 'the house sums many players: not bounded');
  const entry = async (amount: string) =>
    schema.pool.query(
      `INSERT INTO entries (transaction_id, account_id, amount)
       VALUES ((SELECT min(id) FROM transactions), $1, $2)`,
      [house.rows[0].id, amount],
    );
  const fits = await schema.pool.query('SELECT wallet_balance_fits($1) AS largest, wallet_balance_fits($2) AS past', [
    largest(MAX_BALANCE_INTEGER_DIGITS),
    past(MAX_BALANCE_INTEGER_DIGITS),
  ]);
  t.same(fits.rows[0], { largest: true, past: false }, 'the functions decline a credit past the same limit');
  await t.resolves(entry(`-${largest(MAX_AMOUNT_INTEGER_DIGITS)}`));
  await t.rejects(entry(`-${past(MAX_AMOUNT_INTEGER_DIGITS)}`), /entry_within_limit/);
});
