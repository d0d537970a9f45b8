import t from 'tap';
import { PhiaError } from '@phia/proto';
import { parseExactJson, parseExactJsonBuffer } from './exact-json.js';

const refused = (text: string, why: RegExp) => {
  let caught: unknown;
  try {
    parseExactJson(text);
  } catch (error) {
    caught = error;
  }
  t.ok(
    caught instanceof PhiaError && caught.code === 'INVALID_REQUEST' && why.test(caught.detail ?? ''),
    `refuses ${JSON.stringify(text.slice(0, 50))} (${caught instanceof PhiaError ? caught.detail : String(caught)})`,
  );
};

t.test('numbers become their exact source text', async (t) => {
  t.same(parseExactJson('{"amount": 12.50, "n": -0.1, "e": 1e400, "i": 0}'), {
    amount: '12.50',
    n: '-0.1',
    e: '1e400',
    i: '0',
  });
  t.same(parseExactJson('{"amount":"12.50"}'), { amount: '12.50' });
  t.same(parseExactJson('[1,[2.5,{"x":3}],"4"]'), ['1', ['2.5', { x: '3' }], '4']);
  t.equal(parseExactJson('0.30000000000000004'), '0.30000000000000004');
  const big = '123456789012345678901234567890.123456789012345678901';
  t.same(parseExactJson(`{"a":${big}}`), { a: big });
  // Digits inside strings are untouched, escapes still work.
  t.same(parseExactJson('{"s":"1.0 \\"2\\" \\u00e9","t":true,"f":false,"z":null}'), {
    s: '1.0 "2" é',
    t: true,
    f: false,
    z: null,
  });
});

t.test('refuses what JSON.parse would silently accept', async () => {
  refused('{"a":1,"a":2}', /duplicated key "a"/);
  refused('{"a":1,"\\u0061":2}', /duplicated key "a"/);
  refused('{"x":{"b":1,"b":1}}', /duplicated/);
  refused('{"__proto__":{"admin":true}}', /forbidden key "__proto__"/);
  refused('{"x":{"constructor":{"prototype":{}}}}', /forbidden key "constructor"/);
  refused('{"\\u005f_proto__":1}', /forbidden/);
  refused('{"prototype":1}', /forbidden/);
});

t.test('NUL and lone surrogates are refused, real unicode is kept', async (t) => {
  refused('{"user_id":"a\\u0000b"}', /NUL/);
  refused('{"user_id":"\\ud800"}', /surrogate/);
  refused('{"user_id":"x\\udc00y"}', /surrogate/);
  refused('{"a\\u0000":1}', /key/);
  refused('[["\\ud83d"]]', /surrogate/);
  t.same(parseExactJson('{"user_id":"\\ud83c\\udfb2 é \\u200f"}'), { user_id: '🎲 é \u200f' });
});

t.test('nesting is limited', async (t) => {
  const nest = (depth: number) => '['.repeat(depth - 1) + '{}' + ']'.repeat(depth - 1);
  t.same(parseExactJson(nest(16)) !== undefined, true);
  refused(nest(17), /nesting deeper than 16/);
  refused('{"a":'.repeat(5000) + '1' + '}'.repeat(5000), /nesting/);
  t.throws(() => parseExactJson(nest(4), { maxDepth: 3 }));
});

t.test('malformed JSON', async () => {
  for (const text of [
    '',
    '{',
    '{"a":}',
    '{"a" 1}',
    '{a:1}',
    "{'a':1}",
    '{"a":1,}',
    '[1,]',
    '{"a":01}',
    '{"a":.5}',
    '{"a":1.}',
    '{"a":+1}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":1}{"b":2}',
    '{"a":"\u0001"}',
    '{"a":"\\x41"}',
    '{"a":tru}',
    '{"a":1} x',
    '"unterminated',
  ]) {
    refused(text, /./);
  }
});

t.test('bytes must be valid UTF-8', async (t) => {
  t.throws(() => parseExactJsonBuffer(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /invalid request/);
  t.same(parseExactJsonBuffer(Buffer.from('{"name":"Zoë 🎲","amount":1.5}')), { name: 'Zoë 🎲', amount: '1.5' });
});
