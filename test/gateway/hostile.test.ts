/**
 * Malformed and hostile bodies through HTTP, against the real wallet: each is answered with a clear
 * 4xx in the contract's error shape, nothing reaches the ledger, no money moves, the books balance.
 */
import t from 'tap';
import { expectError, json, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_hostile' });
t.teardown(() => stack.close());
const user = uid('victim');
await stack.fund(user, 'USD', '100');

/** A signed bet body written by hand: `amount` and `extra` are inserted as raw JSON text. */
function raw(amount: string, extra = ''): string {
  return `{"user_id":"${user}","currency":"USD","tx_id":"${uid('tx')}","round_id":"r","game_session_id":"g"${extra},"amount":${amount}}`;
}

async function walletMoneyCalls(): Promise<number> {
  const metric = await stack.wallet.metrics.calls.get();
  return metric.values
    .filter((v) => ['Bet', 'Win', 'Refund'].includes(String(v.labels.method)))
    .reduce((s, v) => s + v.value, 0);
}

t.test('hostile bodies: 400, nothing reaches the wallet, no money moves', async (t) => {
  const before = await walletMoneyCalls();
  const deep = (depth: number) => '{"x":'.repeat(depth) + '1' + '}'.repeat(depth);
  const cases: [string, string][] = [
    ['nesting 17 deep', raw('"1"', `,"extra":${deep(16)}`)],
    ['arrays 5000 deep', raw('"1"', `,"extra":${'['.repeat(5000)}${']'.repeat(5000)}`)],
    ['arrays 100 deep', raw('"1"', `,"extra":${'['.repeat(100)}${']'.repeat(100)}`)],
    ['amount 1e999999', raw('1e999999')],
    ['amount 1E2', raw('1E2')],
    ['amount with 30 integer digits', raw('1' + '0'.repeat(29))],
    ['amount with 5000 digits', raw('9'.repeat(5000))],
    ['amount -0', raw('-0')],
    ['amount NaN', raw('NaN')],
    ['amount Infinity', raw('Infinity')],
    ['amount 0x10', raw('0x10')],
    ['amount 1_000', raw('1_000')],
    ['amount "1,5"', raw('"1,5"')],
    ['amount "١٢"', raw('"١٢"')],
    ['amount "１"', raw('"１"')],
    ['amount null', raw('null')],
    ['amount []', raw('[]')],
    ['amount {}', raw('{}')],
    ['user_id null', `{"user_id":null,"currency":"USD","tx_id":"t","round_id":"r","game_session_id":"g","amount":"1"}`],
    ['currency null', raw('"1"').replace('"USD"', 'null')],
    ['look-alike currency', raw('"1"').replace('"USD"', '"UЅD"')],
    ['duplicated amount', raw('"1"', ',"amount":"0.01"')],
    ['duplicated user_id by escape', raw('"1"', `,"\\u0075ser_id":"someone-else"`)],
    ['__proto__ key', raw('"1"', ',"__proto__":{"amount":"0"}')],
    ['nested __proto__', raw('"1"', ',"extra":{"a":[{"__proto__":{"polluted":true}}]}')],
    ['constructor.prototype', raw('"1"', ',"constructor":{"prototype":{"polluted":true}}')],
    ['NUL in user_id', raw('"1"').replace(`"${user}"`, `"${user}\\u0000"`)],
    ['lone surrogate', raw('"1"').replace(`"${user}"`, '"\\ud800"')],
    ['trailing garbage', raw('"1"') + 'x'],
    ['two documents', raw('"1"') + raw('"1"')],
    ['single quotes', raw("'1'")],
    ['comment', raw('"1" /* c */')],
    ['trailing comma', raw('"1",')],
  ];
  for (const [what, body] of cases) {
    expectError(t, await stack.post('/phia/bet', body), 400, 'INVALID_REQUEST', 'invalid request', what);
  }
  const invalidUtf8 = Buffer.concat([
    Buffer.from(raw('"1"').slice(0, -1)),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('}'),
  ]);
  expectError(
    t,
    await stack.post('/phia/bet', invalidUtf8),
    400,
    'INVALID_REQUEST',
    'invalid request',
    'invalid UTF-8',
  );

  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.equal((await walletMoneyCalls()) - before, 0, 'the wallet never saw them');
  t.equal(await stack.balance(user, 'USD'), '100.00', 'no money moved');
});

t.test('nesting up to the limit is fine in unknown fields', async (t) => {
  const extra = `,"extra":${'{"x":'.repeat(14)}1${'}'.repeat(14)}`;
  const res = await stack.post('/phia/bet', raw('"0.01"', extra));
  t.equal(res.statusCode, 200, res.body);
  t.equal(json(res).balance, '99.99');
  await stack.fund(user, 'USD', '0.01');
});

t.test('unicode and odd but valid data is data', async (t) => {
  for (const id of [
    'игрок-🎲',
    'مستخدم\u200f',
    "'; DROP TABLE accounts; --",
    '<script>alert(1)</script>',
    'a'.repeat(128),
  ]) {
    await stack.fund(id, 'USD', '5');
    const bet = moneyBody({ user_id: id, amount: '1.5', round_id: '🎰', game_session_id: 'sessión' });
    const res = await stack.post('/phia/bet', bet);
    t.equal(res.statusCode, 200, `${id.slice(0, 20)}: ${res.body}`);
    t.equal(json(res).balance, '3.50');
    t.equal(await stack.balance(id, 'USD'), '3.50');
  }
  const unknown = await stack.post('/phia/balance', { user_id: "' OR 1=1 --", currency: 'USD' });
  expectError(t, unknown, 404, 'ACCOUNT_NOT_FOUND', 'account not found', 'injection-looking user');
});

t.test('the largest amount is just more than the balance; one digit more is invalid', async (t) => {
  const res = await stack.post('/phia/bet', raw('"' + '9'.repeat(18) + '.99"'));
  expectError(t, res, 402, 'INSUFFICIENT_FUNDS', 'insufficient funds');
  const tooLong = await stack.post('/phia/bet', raw('"' + '9'.repeat(19) + '.99"'));
  expectError(t, tooLong, 400, 'INVALID_REQUEST', 'invalid request', '19 digits');
  t.equal(await stack.balance(user, 'USD'), '100.00');
});

t.test('the books balance after everything', async (t) => {
  const report = await stack.wallet.ledger.checkBooks();
  t.same(report, { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
});
