/**
 * The ledger's functions keep their plans between calls. plpgsql caches the plan of each statement for
 * the connection's life; a LANGUAGE sql function that PostgreSQL runs rather than inlines parses and
 * plans its query again in every transaction (before PostgreSQL 18), which cost a bet about a fifth of
 * its database time. So no request may run one: counted by track_functions, which counts every
 * function run and none inlined.
 */
import t from 'tap';
import { openTestLedger } from '../test-helpers/ledger.js';

const { ledger, schema, close } = await openTestLedger('plans');
t.teardown(close);

const user = 'plans-user';
await ledger.deposit({ tx_id: 'plans-dep', user_id: user, currency: 'USD', amount: '100.00' });
const session = await ledger.openSession({ user_id: user, currency: 'USD' });

const client = await schema.pool.connect();
t.teardown(() => client.release());

interface Ran {
  sql: string[];
  plpgsql: string[];
}

const COUNTS = `SELECT l.lanname, p.proname, f.calls FROM pg_stat_xact_user_functions f
  JOIN pg_proc p ON p.oid = f.funcid JOIN pg_language l ON l.oid = p.prolang`;

/**
 * Runs one ledger function call as its own transaction; the functions it ran, by language. The
 * backend's counts are pending until it reports them (not at every commit): what grew is this call's.
 */
async function functionsRun(call: string, params: unknown[]): Promise<Ran> {
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL track_functions = 'all'`);
    const key = (row: { lanname: string; proname: string }) => `${row.lanname} ${row.proname}`;
    const before = await client.query<{ lanname: string; proname: string; calls: string }>(COUNTS);
    const counted = new Map(before.rows.map((row) => [key(row), Number(row.calls)]));
    await client.query(call, params);
    const after = await client.query<{ lanname: string; proname: string; calls: string }>(COUNTS);
    await client.query('COMMIT');
    const ran = after.rows.filter((row) => Number(row.calls) > (counted.get(key(row)) ?? 0));
    const names = (language: string) =>
      ran
        .filter((row) => row.lanname === language)
        .map((row) => row.proname)
        .sort();
    return { sql: names('sql'), plpgsql: names('plpgsql') };
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

const MONEY = `SELECT * FROM wallet_money($1, $2, $3, 'USD', $4::numeric, $5, 'gs', $6, $7, 'game', 'attempt', $8,
  10000, (floor(extract(epoch FROM clock_timestamp()) * 1000) + 5000)::bigint)`;
const money = (kind: string, txId: string, amount: string, extra: { round?: string; bet?: string } = {}) =>
  functionsRun(MONEY, [
    kind,
    txId,
    user,
    amount,
    kind === 'deposit' || kind === 'withdraw' ? null : (extra.round ?? 'round-1'),
    extra.bet ?? null,
    kind === 'bet' ? session.session_id : null,
    `fingerprint-${kind}-${txId}`,
  ]);
const VOID = `SELECT * FROM wallet_void($1, $2, 'WALLET_TIMEOUT', NULL, NULL, NULL, NULL::bigint, 10000, NULL)`;

t.test('no request runs a SQL-language function (each would be planned again per call)', async (t) => {
  const calls: [string, () => Promise<Ran>][] = [
    ['bet', () => money('bet', 'bet-1', '5.00')],
    ['bet replayed', () => money('bet', 'bet-1', '5.00')],
    ['bet declined', () => money('bet', 'bet-2', '1000.00')],
    ['win of the bet', () => money('win', 'win-1', '2.00', { bet: 'bet-1' })],
    ['refund of the bet', () => money('refund', 'refund-1', '1.00', { bet: 'bet-1' })],
    ['refund of a round never bet', () => money('refund', 'refund-2', '1.00', { round: 'round-2' })],
    ['bet of that round', () => money('bet', 'bet-3', '1.00', { round: 'round-2' })],
    ['deposit', () => money('deposit', 'dep-2', '10.00')],
    ['withdraw', () => money('withdraw', 'wd-1', '10.00')],
    ['void of the bet', () => functionsRun(VOID, ['bet', 'bet-1'])],
    ['void of the refund', () => functionsRun(VOID, ['refund', 'refund-1'])],
    ['void of a request never seen', () => functionsRun(VOID, ['bet', 'bet-never'])],
  ];
  for (const [name, call] of calls) {
    const ran = await call();
    t.ok(ran.plpgsql.includes('wallet_money') || ran.plpgsql.includes('wallet_void'), `${name}: counted`);
    t.same(ran.sql, [], `${name}: ran no SQL-language function (plpgsql: ${ran.plpgsql.join(', ')})`);
  }
});
