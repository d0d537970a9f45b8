/**
 * Round trips to PostgreSQL per request kind, counted at the driver: every pg `Client.query` of the
 * ledger's own connections is one flight to the server and back (the hot path of every money request).
 */
import t from 'tap';
import pg from 'pg';
import { buildCurrencyTable } from '@phia/proto';
import { createTestSchema } from '../../../test/helpers/postgres.js';
import { openDatabase } from '../db/index.js';
import { Ledger } from './ledger.js';

const APPLICATION_NAME = 'phia-round-trips';
const schema = await createTestSchema('round_trips');
const db = await openDatabase({
  databaseUrl: schema.databaseUrl,
  schema: schema.schema,
  applicationName: APPLICATION_NAME,
});
t.teardown(async () => {
  await db.close();
  await schema.drop();
});
const ledger = new Ledger(db, { currencies: buildCurrencyTable() });

let sent = 0;
type Query = (this: pg.Client, ...args: unknown[]) => unknown;
const clientPrototype = pg.Client.prototype as unknown as { query: Query; connectionParameters?: unknown };
const original = clientPrototype.query;
clientPrototype.query = function (this: pg.Client, ...args: unknown[]) {
  const params = (this as unknown as { connectionParameters?: { application_name?: string } }).connectionParameters;
  if (params?.application_name === APPLICATION_NAME) sent++;
  return original.apply(this, args);
};
t.teardown(() => {
  clientPrototype.query = original;
});

/** The statements one call sends, once the currency's counter accounts exist. */
async function roundTrips(call: () => Promise<unknown>): Promise<number> {
  sent = 0;
  await call();
  return sent;
}

let counter = 0;
const id = (prefix: string) => `${prefix}-${++counter}`;
const user = id('user');
const game = (extra: Record<string, string> = {}) => ({
  tx_id: id('tx'),
  user_id: user,
  currency: 'USD',
  amount: '10.00',
  round_id: id('round'),
  game_session_id: 'gs-1',
  ...extra,
});

// Warm-up: the player's account and both counter accounts exist, and a win/refund was seen before.
await ledger.deposit({ tx_id: id('dep'), user_id: user, currency: 'USD', amount: '1000.00' });
await ledger.win(game({ amount: '1.00' }));

t.test('every money request, a void and a balance read are one round trip each', async (t) => {
  const counts: Record<string, number> = {};
  counts.deposit = await roundTrips(() =>
    ledger.deposit({ tx_id: id('dep'), user_id: user, currency: 'USD', amount: '5.00' }),
  );
  counts.withdraw = await roundTrips(() =>
    ledger.withdraw({ tx_id: id('wd'), user_id: user, currency: 'USD', amount: '5.00' }),
  );
  const bet = game();
  counts.bet = await roundTrips(() => ledger.bet(bet));
  counts.replay = await roundTrips(() => ledger.bet(bet));
  counts.win = await roundTrips(() => ledger.win(game({ bet_tx_id: bet.tx_id, round_id: bet.round_id })));
  const refund = game({ amount: '4.00', bet_tx_id: bet.tx_id, round_id: bet.round_id });
  counts.refund = await roundTrips(() => ledger.refund(refund));
  counts['void of a refund'] = await roundTrips(() => ledger.voidTransaction({ kind: 'refund', tx_id: refund.tx_id }));
  counts['void of a bet'] = await roundTrips(() => ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id }));
  counts['void of an unseen request'] = await roundTrips(() =>
    ledger.voidTransaction({ kind: 'bet', tx_id: id('tx') }),
  );
  counts.balance = await roundTrips(() => ledger.getBalance({ user_id: user, currency: 'USD' }));
  t.comment(`round trips: ${JSON.stringify(counts)}`);
  for (const [kind, count] of Object.entries(counts)) t.equal(count, 1, kind);
});

t.test('a request with a deadline is still one round trip', async (t) => {
  const deadline = Date.now() + 5000;
  t.equal(await roundTrips(() => ledger.bet(game(), { deadline })), 1, 'bet');
  t.equal(await roundTrips(() => ledger.getBalance({ user_id: user, currency: 'USD' }, { deadline })), 1, 'balance');
});
