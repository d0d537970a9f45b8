/**
 * Every row of contract sections 4 and 5 through HTTP, on both endpoint styles, against the real
 * wallet (PostgreSQL) and real Redis.
 */
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { BalanceAnswer, MoneyAnswer } from '../../gateway/src/phia/contract.js';
import { expectError, json, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_contract' });
t.teardown(() => stack.close());

type Style = 'per-action' | 'single';
const STYLES: Style[] = ['per-action', 'single'];

function call(style: Style, action: string, body: Record<string, unknown>) {
  return style === 'per-action' ? stack.post(`/phia/${action}`, body) : stack.post('/phia', { action, ...body });
}

let users = 0;
async function newPlayer(currency = 'USD', amount = '100'): Promise<string> {
  const user = `player-${++users}-${uid('u')}`;
  await stack.fund(user, currency, amount);
  return user;
}

for (const style of STYLES) {
  t.test(`${style}: balance, bet, win, refund (200, exact decimals)`, async (t) => {
    const user = await newPlayer('USD', '100');
    const balance = await call(style, 'balance', { user_id: user, currency: 'USD' });
    t.equal(balance.statusCode, 200);
    t.same(json(balance), { balance: '100.00', currency: 'USD' });
    t.ok(Value.Check(BalanceAnswer, json(balance)));

    const round = uid('round');
    const bet = moneyBody({ user_id: user, round_id: round, amount: '12.5' });
    const betRes = await call(style, 'bet', bet);
    t.equal(betRes.statusCode, 200);
    t.equal(betRes.body, JSON.stringify({ balance: '87.50', currency: 'USD', tx_id: bet.tx_id }), 'exact bytes');
    t.ok(Value.Check(MoneyAnswer, json(betRes)));

    const win = moneyBody({ user_id: user, round_id: round, amount: '20', bet_tx_id: bet.tx_id });
    const winRes = await call(style, 'win', win);
    t.same(json(winRes), { balance: '107.50', currency: 'USD', tx_id: win.tx_id });

    const bet2 = moneyBody({ user_id: user, amount: '7.25' });
    t.equal((await call(style, 'bet', bet2)).statusCode, 200);
    // A refund may reuse its bet's tx_id (idempotency is per request type).
    const refund = { ...bet2, bet_tx_id: bet2.tx_id };
    const refundRes = await call(style, 'refund', refund);
    t.same(json(refundRes), { balance: '107.50', currency: 'USD', tx_id: bet2.tx_id });
    t.equal(await stack.balance(user, 'USD'), '107.50', 'the ledger agrees');
  });
}

t.test('amounts: JSON numbers and strings are the same exact amount, per currency decimals', async (t) => {
  const user = await newPlayer('USD', '10');
  const asNumber = await stack.post(
    '/phia/bet',
    `{"user_id":"${user}","currency":"USD","tx_id":"${uid('tx')}","round_id":"r","game_session_id":"g","amount":0.10}`,
  );
  t.same(json(asNumber), { balance: '9.90', currency: 'USD', tx_id: json(asNumber).tx_id });
  // 0.1 + 0.2 as floats would be 0.30000000000000004.
  const r1 = await stack.post('/phia/bet', moneyBody({ user_id: user, amount: '0.1' }));
  const r2 = await stack.post(
    '/phia/bet',
    `{"user_id":"${user}","currency":"USD","tx_id":"${uid('tx')}","round_id":"r","game_session_id":"g","amount":0.2}`,
  );
  t.equal(json(r1).balance, '9.80');
  t.equal(json(r2).balance, '9.60');
  t.equal(await stack.balance(user, 'USD'), '9.60');

  const jpy = await newPlayer('JPY', '1000');
  t.same(json(await stack.post('/phia/balance', { user_id: jpy, currency: 'JPY' })), {
    balance: '1000',
    currency: 'JPY',
  });
  const jpyBet = await stack.post('/phia/bet', moneyBody({ user_id: jpy, currency: 'JPY', amount: 1 }));
  t.equal(json(jpyBet).balance, '999');
  const jpyBad = await stack.post('/phia/bet', moneyBody({ user_id: jpy, currency: 'JPY', amount: '1.5' }));
  expectError(t, jpyBad, 400, 'INVALID_REQUEST', 'invalid request', 'JPY has no decimals');

  const eth = await newPlayer('ETH', '1');
  const ethBet = await stack.post(
    '/phia/bet',
    `{"user_id":"${eth}","currency":"ETH","tx_id":"${uid('tx')}","round_id":"r","game_session_id":"g","amount":0.000000000000000001}`,
  );
  t.equal(json(ethBet).balance, '0.999999999999999999', '18 decimals, exact');
  const btc = await newPlayer('BTC', '0.5');
  const btcBet = await stack.post('/phia/bet', moneyBody({ user_id: btc, currency: 'BTC', amount: '0.00000001' }));
  t.equal(json(btcBet).balance, '0.49999999');
  const btcBad = await stack.post('/phia/bet', moneyBody({ user_id: btc, currency: 'BTC', amount: '0.000000001' }));
  expectError(t, btcBad, 400, 'INVALID_REQUEST', 'invalid request', 'BTC: 9 decimals');
  t.equal(await stack.balance(btc, 'BTC'), '0.49999999', 'refused bet moved nothing');
});

t.test('amount 0 is valid (a losing round closing win)', async (t) => {
  const user = await newPlayer('USD', '5');
  const res = await stack.post('/phia/win', moneyBody({ user_id: user, amount: 0 }));
  t.same(json(res).balance, '5.00');
});

t.test('400 INVALID_REQUEST: schema, amounts, currencies, JSON', async (t) => {
  const user = await newPlayer('USD', '50');
  const base = () => moneyBody({ user_id: user });
  const drop = (field: string) => {
    const body = base();
    delete body[field];
    return body;
  };
  const cases: [string, string, unknown][] = [
    ['missing user_id', '/phia/bet', drop('user_id')],
    ['missing currency', '/phia/bet', drop('currency')],
    ['missing tx_id', '/phia/bet', drop('tx_id')],
    ['missing round_id', '/phia/win', drop('round_id')],
    ['missing amount', '/phia/refund', drop('amount')],
    ['missing game_session_id on bet', '/phia/bet', drop('game_session_id')],
    ['empty tx_id', '/phia/bet', { ...base(), tx_id: '' }],
    ['tx_id of 129 chars', '/phia/bet', { ...base(), tx_id: 'x'.repeat(129) }],
    ['user_id of 129 chars', '/phia/balance', { user_id: 'u'.repeat(129), currency: 'USD' }],
    ['lowercase currency', '/phia/balance', { user_id: user, currency: 'usd' }],
    ['1-letter currency', '/phia/balance', { user_id: user, currency: 'U' }],
    ['unknown currency', '/phia/balance', { user_id: user, currency: 'ZZZ' }],
    ['unknown currency on a bet', '/phia/bet', { ...base(), currency: 'ZZZ' }],
    ['too many decimals', '/phia/bet', { ...base(), amount: '1.001' }],
    ['negative amount', '/phia/bet', { ...base(), amount: '-1.00' }],
    ['negative amount as number', '/phia/bet', JSON.stringify(base()).replace('"1.00"', '-1')],
    ['exponent', '/phia/bet', JSON.stringify(base()).replace('"1.00"', '1e2')],
    ['amount with spaces', '/phia/bet', { ...base(), amount: ' 1.00' }],
    ['amount with a plus', '/phia/bet', { ...base(), amount: '+1' }],
    ['amount "1."', '/phia/bet', { ...base(), amount: '1.' }],
    ['amount ".5"', '/phia/bet', { ...base(), amount: '.5' }],
    ['amount as boolean', '/phia/bet', { ...base(), amount: true }],
    ['amount null', '/phia/bet', { ...base(), amount: null }],
    ['amount as object', '/phia/bet', { ...base(), amount: { value: '1' } }],
    ['user_id null', '/phia/bet', { ...base(), user_id: null }],
    ['user_id as array', '/phia/bet', { ...base(), user_id: ['u'] }],
    ['body is an array', '/phia/bet', [base()]],
    ['body is a string', '/phia/bet', '"bet"'],
    ['body is null', '/phia/bet', 'null'],
    ['malformed JSON', '/phia/bet', '{"user_id":'],
    ['empty body', '/phia/bet', ''],
    ['action of another endpoint', '/phia/bet', { ...base(), action: 'win' }],
    ['no action on the single endpoint', '/phia', base()],
    ['unknown action', '/phia', { ...base(), action: 'deposit' }],
    ['action with another case', '/phia', { ...base(), action: 'BET' }],
  ];
  for (const [what, path, body] of cases) {
    expectError(t, await stack.post(path, body), 400, 'INVALID_REQUEST', 'invalid request', what);
  }
  t.equal(await stack.balance(user, 'USD'), '50.00', 'no money moved');
});

t.test('unknown fields are ignored; null optional fields count as absent', async (t) => {
  const user = await newPlayer('USD', '10');
  const res = await stack.post(
    '/phia/bet',
    moneyBody({ user_id: user, extra: { nested: [1, 2] }, session_id: null, game_id: null, bet_tx_id: 'ignored' }),
  );
  t.equal(res.statusCode, 200, res.body);
  const balance = await stack.post('/phia/balance', { user_id: user, currency: 'USD', session_id: '', foo: 1 });
  t.same(json(balance), { balance: '9.00', currency: 'USD' });
});

t.test('401 SESSION_NOT_FOUND and WRONG_SESSION (balance and bet); wins need no session', async (t) => {
  const user = await newPlayer('USD', '10');
  const other = await newPlayer('USD', '10');
  const session = (await stack.admin.OpenSession({ user_id: user, currency: 'USD', ttl_seconds: 600 })).session_id;
  const ok = await stack.post('/phia/balance', { user_id: user, currency: 'USD', session_id: session });
  t.equal(ok.statusCode, 200, 'live session');
  expectError(
    t,
    await stack.post('/phia/balance', { user_id: user, currency: 'USD', session_id: 'nope' }),
    401,
    'SESSION_NOT_FOUND',
    'session not found',
    'balance, unknown session',
  );
  expectError(
    t,
    await stack.post('/phia/balance', { user_id: other, currency: 'USD', session_id: session }),
    401,
    'WRONG_SESSION',
    'wrong session ID',
    "balance, another user's session",
  );
  expectError(
    t,
    await stack.post('/phia', { action: 'bet', ...moneyBody({ user_id: other, session_id: session }) }),
    401,
    'WRONG_SESSION',
    'wrong session ID',
    "bet, another user's session",
  );
  await stack.admin.CloseSession({ session_id: session });
  expectError(
    t,
    await stack.post('/phia/bet', moneyBody({ user_id: user, session_id: session })),
    401,
    'SESSION_NOT_FOUND',
    'session not found',
    'bet, closed session',
  );
  const win = await stack.post('/phia/win', moneyBody({ user_id: user, session_id: session, amount: '1' }));
  t.equal(win.statusCode, 200, 'a win pays with a closed session');
  t.equal(await stack.balance(user, 'USD'), '11.00');
  t.equal(await stack.balance(other, 'USD'), '10.00');
});

t.test('402 INSUFFICIENT_FUNDS', async (t) => {
  const user = await newPlayer('USD', '5');
  expectError(
    t,
    await stack.post('/phia/bet', moneyBody({ user_id: user, amount: '5.01' })),
    402,
    'INSUFFICIENT_FUNDS',
    'insufficient funds',
  );
  t.equal((await stack.post('/phia/bet', moneyBody({ user_id: user, amount: '5' }))).statusCode, 200, 'all of it');
  t.equal(await stack.balance(user, 'USD'), '0.00');
});

t.test('403 PLAYER_BLOCKED on bets; wins and refunds still pay', async (t) => {
  const user = await newPlayer('USD', '10');
  const bet = moneyBody({ user_id: user, amount: '2' });
  t.equal((await stack.post('/phia/bet', bet)).statusCode, 200);
  await stack.admin.SetAccountStatus({ user_id: user, currency: 'USD', blocked: true });
  expectError(t, await stack.post('/phia/bet', moneyBody({ user_id: user })), 403, 'PLAYER_BLOCKED', 'player blocked');
  t.equal((await stack.post('/phia/win', moneyBody({ user_id: user, amount: '3' }))).statusCode, 200, 'win pays');
  const refund = await stack.post('/phia/refund', { ...bet, tx_id: uid('rf'), bet_tx_id: bet.tx_id });
  t.equal(refund.statusCode, 200, 'refund pays');
  t.equal(json(refund).balance, '13.00');
});

t.test('404 ACCOUNT_NOT_FOUND', async (t) => {
  expectError(
    t,
    await stack.post('/phia/balance', { user_id: uid('ghost'), currency: 'USD' }),
    404,
    'ACCOUNT_NOT_FOUND',
    'account not found',
    'balance',
  );
  expectError(
    t,
    await stack.post('/phia', { action: 'bet', ...moneyBody({ user_id: uid('ghost') }) }),
    404,
    'ACCOUNT_NOT_FOUND',
    'account not found',
    'bet',
  );
});

t.test('409 IDEMPOTENCY_MISMATCH: same type and tx_id, different content', async (t) => {
  const user = await newPlayer('USD', '10');
  const bet = moneyBody({ user_id: user, amount: '1' });
  t.equal((await stack.post('/phia/bet', bet)).statusCode, 200);
  expectError(
    t,
    await stack.post('/phia/bet', { ...bet, amount: '2' }),
    409,
    'IDEMPOTENCY_MISMATCH',
    'tx_id reused',
    'other amount',
  );
  expectError(
    t,
    await stack.post('/phia', { ...bet, action: 'bet', round_id: 'other' }),
    409,
    'IDEMPOTENCY_MISMATCH',
    'tx_id reused',
    'other round, single endpoint',
  );
  const same = await stack.post('/phia/bet', { ...bet, amount: '1.00', session_id: 'irrelevant', game_id: 'limbo' });
  t.equal(same.statusCode, 200, '"1" and "1.00" are the same amount; session and game do not count');
  t.equal(await stack.balance(user, 'USD'), '9.00', 'debited once');
});

t.test('409 BET_REFUNDED and tombstones; 409 REFUND_EXCEEDS_BET', async (t) => {
  const user = await newPlayer('USD', '20');
  const round = uid('round');
  const bet = moneyBody({ user_id: user, round_id: round, amount: '5' });
  t.equal((await stack.post('/phia/bet', bet)).statusCode, 200);
  expectError(
    t,
    await stack.post('/phia/refund', { ...bet, tx_id: uid('rf'), bet_tx_id: bet.tx_id, amount: '5.01' }),
    409,
    'REFUND_EXCEEDS_BET',
    'exceeds',
  );
  const refund = await stack.post('/phia/refund', { ...bet, tx_id: uid('rf'), bet_tx_id: bet.tx_id });
  t.equal(json(refund).balance, '20.00');
  expectError(
    t,
    await stack.post('/phia/win', moneyBody({ user_id: user, round_id: round, bet_tx_id: bet.tx_id })),
    409,
    'BET_REFUNDED',
    'already refunded',
    'win for a refunded bet',
  );

  // A refund for a bet never seen: 200 with the unchanged balance, and the bet is refused later.
  const lateRound = uid('round');
  const lateBet = moneyBody({ user_id: user, round_id: lateRound, amount: '3' });
  const tombstone = await stack.post('/phia/refund', { ...lateBet, tx_id: uid('rf'), bet_tx_id: lateBet.tx_id });
  t.equal(tombstone.statusCode, 200);
  t.equal(json(tombstone).balance, '20.00');
  expectError(t, await stack.post('/phia/bet', lateBet), 409, 'BET_REFUNDED', 'already refunded', 'late bet');
  t.equal(await stack.balance(user, 'USD'), '20.00');
});

t.test('413 PAYLOAD_TOO_LARGE and 415 UNSUPPORTED_MEDIA_TYPE', async (t) => {
  const user = await newPlayer('USD', '10');
  const big = moneyBody({ user_id: user, padding: 'x'.repeat(17 * 1024) });
  expectError(t, await stack.post('/phia/bet', big), 413, 'PAYLOAD_TOO_LARGE', 'too large');
  const justUnder = moneyBody({ user_id: user, padding: 'x'.repeat(15 * 1024) });
  t.equal((await stack.post('/phia/bet', justUnder)).statusCode, 200, 'under 16 KiB passes');

  const body = JSON.stringify(moneyBody({ user_id: user }));
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data']) {
    expectError(
      t,
      await stack.post('/phia/bet', body, { contentType: type }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'content type',
      type,
    );
  }
  const noType = await stack.app.inject({ method: 'POST', url: '/phia/bet', payload: body, headers: {} });
  expectError(t, noType, 415, 'UNSUPPORTED_MEDIA_TYPE', 'content type', 'no content type');
  const withCharset = await stack.post('/phia/bet', moneyBody({ user_id: user }), {
    contentType: 'application/json; charset=utf-8',
  });
  t.equal(withCharset.statusCode, 200, 'charset parameter accepted');
  t.equal(await stack.balance(user, 'USD'), '8.00');
});

t.test('the body limit is configurable (PHIA_BODY_LIMIT_BYTES)', async (t) => {
  const app = await stack.newApp({}, { PHIA_BODY_LIMIT_BYTES: '1024' });
  const res = await app.inject({
    method: 'POST',
    url: '/phia/balance',
    payload: JSON.stringify({ user_id: 'u', currency: 'USD', pad: 'x'.repeat(1100) }),
    headers: { 'content-type': 'application/json' },
  });
  expectError(t, res, 413, 'PAYLOAD_TOO_LARGE', 'too large');
});

t.test('no stack traces or internal details in answers; unknown paths 404', async (t) => {
  const res = await stack.app.inject({ method: 'GET', url: '/phia/bet' });
  t.equal(res.statusCode, 404);
  t.same(json(res), { error: 'not found', code: 'NOT_FOUND' });
  const other = await stack.post('/phia/deposit', moneyBody());
  t.equal(other.statusCode, 404);
  const bad = await stack.post('/phia/bet', '{"user_id": tru}');
  t.notMatch(bad.body, /at |stack|Error|position|tru/);
  t.same(Object.keys(json(bad)).sort(), ['code', 'error']);
});
