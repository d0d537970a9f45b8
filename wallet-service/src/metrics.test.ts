/** The wallet's /metrics: the running build, and its PostgreSQL pool (connections, idle, waiting). */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { createTestSchema } from '../../test/helpers/postgres.js';
import { startWalletServer } from './wallet.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const schema = await createTestSchema('metrics');
t.teardown(() => schema.drop());

/** The value of an unlabelled series in the exposition text. */
function value(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

t.test('phia_build_info and the pool gauges follow the pool as calls take and give back connections', async (t) => {
  const wallet = await startWalletServer({
    databaseUrl: schema.databaseUrl,
    schema: schema.schema,
    poolSize: 2,
    metricsPort: 0,
  });
  t.teardown(() => wallet.close());
  const scrape = () => fetch(`http://127.0.0.1:${wallet.metricsPort}/metrics`).then((res) => res.text());

  const idle = await scrape();
  t.ok(
    idle.split('\n').includes(`phia_build_info{service="wallet",version="${version}",node="${process.version}"} 1`),
    'build info',
  );
  t.equal(value(idle, 'wallet_db_pool_waiting_requests'), 0, 'nothing waits');
  t.equal(value(idle, 'wallet_db_pool_clients'), value(idle, 'wallet_db_pool_idle_clients'), 'every connection idle');

  // Both connections held in open transactions, and a third statement queued behind them.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let inside = 0;
  let bothInside!: () => void;
  const bothIn = new Promise<void>((resolve) => (bothInside = resolve));
  const holders = [1, 2].map(() =>
    wallet.db.transaction(async () => {
      if (++inside === 2) bothInside();
      await held;
    }),
  );
  await bothIn;
  const queued = wallet.db.query('SELECT 1');
  const busy = await scrape();
  t.equal(value(busy, 'wallet_db_pool_clients'), 2, 'two connections open');
  t.equal(value(busy, 'wallet_db_pool_idle_clients'), 0, 'none idle');
  t.equal(value(busy, 'wallet_db_pool_waiting_requests'), 1, 'one statement waits');

  release();
  await Promise.all([...holders, queued]);
  const after = await scrape();
  t.equal(value(after, 'wallet_db_pool_waiting_requests'), 0, 'the queue drained');
  t.equal(value(after, 'wallet_db_pool_idle_clients'), 2, 'both back in the pool');
});

t.test('the periodic books check counts accounts below zero; without it the series is absent', async (t) => {
  const off = await startWalletServer({ databaseUrl: schema.databaseUrl, schema: schema.schema, metricsPort: 0 });
  const offText = await fetch(`http://127.0.0.1:${off.metricsPort}/metrics`).then((res) => res.text());
  await off.close();
  t.notMatch(offText, /wallet_books_negative_accounts/, 'off unless configured');

  const wallet = await startWalletServer({
    databaseUrl: schema.databaseUrl,
    schema: schema.schema,
    metricsPort: 0,
    booksCheckIntervalMs: 20,
  });
  t.teardown(() => wallet.close());
  const negative = async () =>
    value(
      await fetch(`http://127.0.0.1:${wallet.metricsPort}/metrics`).then((res) => res.text()),
      'wallet_books_negative_accounts',
    );
  /** Scrapes until the gauge shows `wanted` (the check runs every 20 ms). */
  const until = async (wanted: number) => {
    while ((await negative()) !== wanted) await new Promise((resolve) => setTimeout(resolve, 10));
    return wanted;
  };

  await wallet.ledger.deposit({ tx_id: 'books-dep', user_id: 'books-1', currency: 'USD', amount: '5.00' });
  t.equal(await until(0), 0, 'sound books: 0');
  // The database refuses a negative player balance; only a dropped constraint (a hand-made fix, a
  // migration gone wrong) lets one in, and that is what the check is there to see.
  await schema.pool.query('ALTER TABLE accounts DROP CONSTRAINT player_balance_not_negative');
  await schema.pool.query(`UPDATE accounts SET balance = -1 WHERE owner_kind = 'player' AND user_id = 'books-1'`);
  t.equal(await until(1), 1, 'one account below zero');
  await schema.pool.query(`UPDATE accounts SET balance = 5 WHERE owner_kind = 'player' AND user_id = 'books-1'`);
  t.equal(await until(0), 0, 'back to 0 once repaired');
});
