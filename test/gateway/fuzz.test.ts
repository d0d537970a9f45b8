/**
 * Property-based fuzz of the gateway's body parsing and validation, against the real stack (real
 * wallet on PostgreSQL, real Redis; requests through inject(), every one correctly signed).
 *
 * Inputs: random JSON texts, hostile non-JSON bytes (truncated, invalid UTF-8, NUL, huge numbers,
 * deep nesting, duplicate and prototype keys, BOMs, oversized and non-JSON bodies) and mutations of
 * valid balance/bet/win/refund bodies, sent to both endpoint styles. For every input it proves:
 * no 500 and no crash; the status is in the contract's table; the answer is JSON; an error answer is
 * exactly {error, code} with a contract code, the status that code maps to and its message words;
 * 200 only for a body valid by the predicate below (written here from contract sections 2 and 4, not
 * taken from the gateway's schemas); every invalid body gets 400 INVALID_REQUEST (413/415 for too
 * large / not JSON) without the wallet seeing a single call, and the funded player's balance only
 * ever moves by the 200 answers the gateway gave.
 *
 * Reproduce a failure: FUZZ_SEED=<seed printed in the test name> npx tap test/gateway/fuzz.test.ts
 */
import t from 'tap';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { uid } from '../../gateway/src/test-helpers/index.js';
import { startStack } from '../helpers/gateway-stack.js';

const SEED = process.env.FUZZ_SEED === undefined ? 20_240_611 : Number.parseInt(process.env.FUZZ_SEED, 10);
if (!Number.isSafeInteger(SEED)) throw new Error(`FUZZ_SEED must be an integer, got ${process.env.FUZZ_SEED}`);
const RUNS = { randomJson: 150, hostile: 150, mutations: 250 };

// ---------------------------------------------------------------------------------------------
// The contract, as written in /work/shared/phia-contract.md (sections 2, 4, 5).
// ---------------------------------------------------------------------------------------------

const ACTIONS = ['balance', 'bet', 'win', 'refund'] as const;
type Action = (typeof ACTIONS)[number];
/** Section 2: a per-action endpoint, or the single endpoint (action in the body). */
type Endpoint = { path: string; action: Action } | { path: '/phia'; action: 'single' };
const ENDPOINTS: Endpoint[] = [
  ...ACTIONS.map((action) => ({ path: `/phia/${action}`, action })),
  { path: '/phia', action: 'single' },
];

/** Section 5: code → [status, words the message contains]. */
const CODES: Readonly<Record<string, readonly [number, string]>> = {
  INVALID_REQUEST: [400, 'invalid request'],
  INVALID_SIGNATURE: [401, 'unauthorized'],
  SESSION_NOT_FOUND: [401, 'session not found'],
  WRONG_SESSION: [401, 'wrong session ID'],
  INSUFFICIENT_FUNDS: [402, 'insufficient funds'],
  IP_NOT_ALLOWED: [403, 'ip not allowed'],
  PLAYER_BLOCKED: [403, 'player blocked'],
  ACCOUNT_NOT_FOUND: [404, 'account not found'],
  IDEMPOTENCY_MISMATCH: [409, 'tx_id reused'],
  REQUEST_IN_PROGRESS: [409, 'in progress'],
  BET_REFUNDED: [409, 'already refunded'],
  BET_NOT_APPLIED: [409, 'bet not applied'],
  REFUND_EXCEEDS_BET: [409, 'exceeds'],
  PAYLOAD_TOO_LARGE: [413, 'too large'],
  UNSUPPORTED_MEDIA_TYPE: [415, 'content type'],
  WALLET_UNAVAILABLE: [503, 'unavailable'],
  WALLET_TIMEOUT: [504, 'timeout'],
};
const STATUSES = new Set([200, ...Object.values(CODES).map(([status]) => status)]);
/** Codes a body that passed validation may still get on a healthy stack (money rules, section 6). */
const DECIDED_CODES = new Set([
  'SESSION_NOT_FOUND',
  'WRONG_SESSION',
  'INSUFFICIENT_FUNDS',
  'ACCOUNT_NOT_FOUND',
  'IDEMPOTENCY_MISMATCH',
  'BET_REFUNDED',
  'BET_NOT_APPLIED',
  'REFUND_EXCEEDS_BET',
]);
/** Currency decimals named in section 4 (all configured by default). */
const DECIMALS: Readonly<Record<string, number>> = { USD: 2, JPY: 0, BTC: 8, ETH: 18 };
const ID_MAX = 128;
/** Where the contract gives no bound, the gateway's documented generous ones (contract.ts, LIMITS). */
const SESSION_ID_MAX = 256;
/** Section 4: at most 18 digits before the point. */
const AMOUNT_MAX_INTEGER_DIGITS = 18;
/** The exact-JSON reader's documented hardening (body/exact-json.ts header). */
const MAX_DEPTH = 16;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// ---------------------------------------------------------------------------------------------
// An independent strict JSON reader: numbers keep their source text; duplicate and prototype
// keys, nesting over 16, NUL and lone surrogates are refused.
// ---------------------------------------------------------------------------------------------

class JNum {
  constructor(readonly text: string) {}
}
type JVal = null | boolean | string | JNum | JVal[] | Map<string, JVal>;

class Bad extends Error {}

// eslint-disable-next-line no-control-regex -- NUL is what this looks for
const UNSTORABLE = /\u0000|\p{Cs}/u;

function strictParse(text: string): JVal {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const str = (): string => {
    const start = i++;
    for (;;) {
      if (i >= text.length) throw new Bad('unterminated string');
      const c = text.charCodeAt(i);
      if (c < 0x20) throw new Bad('control character in string');
      if (c === 0x22) break;
      if (c === 0x5c) {
        const e = text.charAt(i + 1);
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) throw new Bad('bad \\u escape');
          i += 6;
        } else if ('"\\/bfnrt'.includes(e) && e !== '') i += 2;
        else throw new Bad('bad escape');
      } else i++;
    }
    i++;
    const value = JSON.parse(text.slice(start, i)) as string;
    if (UNSTORABLE.test(value)) throw new Bad('NUL or lone surrogate');
    return value;
  };
  const value = (depth: number): JVal => {
    ws();
    const c = text.charAt(i);
    if (c === '{' || c === '[') {
      if (depth > MAX_DEPTH) throw new Bad('too deep');
      i++;
      ws();
      if (c === '[') {
        const items: JVal[] = [];
        if (text.charAt(i) === ']') return (i++, items);
        for (;;) {
          items.push(value(depth + 1));
          ws();
          const next = text.charAt(i++);
          if (next === ']') return items;
          if (next !== ',') throw new Bad('bad array');
        }
      }
      const object = new Map<string, JVal>();
      if (text.charAt(i) === '}') return (i++, object);
      for (;;) {
        ws();
        if (text.charAt(i) !== '"') throw new Bad('expected key');
        const key = str();
        if (FORBIDDEN_KEYS.has(key) || object.has(key)) throw new Bad('forbidden or duplicated key');
        ws();
        if (text.charAt(i++) !== ':') throw new Bad('expected colon');
        object.set(key, value(depth + 1));
        ws();
        const next = text.charAt(i++);
        if (next === '}') return object;
        if (next !== ',') throw new Bad('bad object');
      }
    }
    if (c === '"') return str();
    const num = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    num.lastIndex = i;
    const m = num.exec(text);
    if (m !== null) return ((i += m[0].length), new JNum(m[0]));
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) return ((i += word.length), v);
    }
    throw new Bad('unexpected character');
  };
  const result = value(1);
  ws();
  if (i !== text.length) throw new Bad('trailing data');
  return result;
}

/** What section 4 leaves to configuration: the body limit and the configured currencies. */
interface Configured {
  bodyLimit: number;
  currencies: ReadonlyMap<string, number>;
}

type Verdict =
  { valid: true; action: Action; body: Map<string, JVal> } | { valid: false; status: number; code: string };

const invalid = (status = 400, code = 'INVALID_REQUEST'): Verdict => ({ valid: false, status, code });
/** "chars" of section 4, counted as the ledger stores them: UTF-16 code units. */
const chars = (s: string) => s.length;
const isId = (v: JVal | undefined, min = 1, max = ID_MAX) =>
  typeof v === 'string' && chars(v) >= min && chars(v) <= max;
const isOptional = (v: JVal | undefined, max: number) => v === undefined || v === null || isId(v, 0, max);

/** Section 4 amount: a decimal string or JSON number, >= 0, no sign/exponent/spaces, <= decimals. */
function isAmount(v: JVal | undefined, decimals: number): boolean {
  const text = v instanceof JNum ? v.text : v;
  if (typeof text !== 'string') return false;
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(text);
  return m !== null && (m[1] ?? '').length <= AMOUNT_MAX_INTEGER_DIGITS && (m[2] ?? '').length <= decimals;
}

/** The expected outcome of one request, from the contract only. */
function verdict(endpoint: Endpoint, payload: Buffer, contentType: string, config: Configured): Verdict {
  const { bodyLimit, currencies } = config;
  if (!/^application\/json\s*(;|$)/i.test(contentType)) return invalid(415, 'UNSUPPORTED_MEDIA_TYPE');
  if (payload.length > bodyLimit) return invalid(413, 'PAYLOAD_TOO_LARGE');
  let parsed: JVal;
  try {
    let text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(payload);
    // RFC 8259 section 8.1: a parser MAY ignore one leading byte order mark.
    if (text.startsWith('\ufeff')) text = text.slice(1);
    parsed = strictParse(text);
  } catch {
    return invalid();
  }
  if (!(parsed instanceof Map)) return invalid();
  const body = parsed;
  const f = (name: string) => body.get(name);
  const actionField = f('action');
  let action: Action;
  if (endpoint.action === 'single') {
    const found = ACTIONS.find((a) => a === actionField);
    if (found === undefined) return invalid();
    action = found;
  } else {
    action = endpoint.action;
    if (actionField !== undefined && actionField !== action) return invalid();
  }
  const currency = f('currency');
  if (!isId(f('user_id'))) return invalid();
  if (typeof currency !== 'string' || !/^[A-Z0-9]{2,10}$/.test(currency)) return invalid();
  const decimals = currencies.get(currency);
  if (decimals === undefined) return invalid();
  if (!isOptional(f('session_id'), SESSION_ID_MAX) || !isOptional(f('game_id'), ID_MAX)) return invalid();
  if (action === 'balance') {
    return isOptional(f('game_session_id'), ID_MAX) ? { valid: true, action, body } : invalid();
  }
  if (!isId(f('game_session_id')) || !isId(f('tx_id')) || !isId(f('round_id'))) return invalid();
  if (!isAmount(f('amount'), decimals)) return invalid();
  if (action !== 'bet' && !isOptional(f('bet_tx_id'), ID_MAX)) return invalid();
  return { valid: true, action, body };
}

// ---------------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------------

interface Input {
  kind: string;
  endpoint: Endpoint;
  payload: Buffer;
  contentType: string;
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON'];
const endpointArb = fc.constantFrom(...ENDPOINTS);
const jsonTypeArb = fc.constantFrom(...JSON_TYPES);
const idArb = fc.stringMatching(/^[a-z0-9]{8,16}$/);

/** A body as ordered entries of key and raw JSON text: duplicates and raw numbers are expressible. */
type Entries = [string, string][];
const q = (s: string) => JSON.stringify(s);
const serialize = (entries: Entries) => `{${entries.map(([k, v]) => `${q(k)}:${v}`).join(',')}}`;

const VICTIM = uid('fuzz-victim');

/** A valid body of the endpoint's action (a random action on the single endpoint). */
function validBodyArb(endpoint: Endpoint): fc.Arbitrary<{ action: Action; entries: Entries }> {
  const actionArb = endpoint.action === 'single' ? fc.constantFrom(...ACTIONS) : fc.constant(endpoint.action);
  return fc
    .record({
      action: actionArb,
      currency: fc.constantFrom('USD', 'USD', 'USD', 'JPY'),
      tx: idArb,
      round: idArb,
      gs: idArb,
      cents: fc.integer({ min: 0, max: 500 }),
      amountAsNumber: fc.boolean(),
      gameId: fc.option(fc.constantFrom('crash', 'limbo', '', 'dice'), { nil: undefined }),
      betTx: fc.option(idArb, { nil: undefined }),
    })
    .map(({ action, currency, tx, round, gs, cents, amountAsNumber, gameId, betTx }) => {
      const entries: Entries = [
        ['user_id', q(VICTIM)],
        ['currency', q(currency)],
      ];
      if (endpoint.action === 'single') entries.unshift(['action', q(action)]);
      if (gameId !== undefined) entries.push(['game_id', q(gameId)]);
      if (action !== 'balance') {
        const amount =
          currency === 'JPY' ? String(cents) : `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
        entries.push(
          ['tx_id', q(`fz-${tx}`)],
          ['round_id', q(`r-${round}`)],
          ['game_session_id', q(`gs-${gs}`)],
          ['amount', amountAsNumber ? amount : q(amount)],
        );
        if (action !== 'bet' && betTx !== undefined) entries.push(['bet_tx_id', q(`fz-${betTx}`)]);
      }
      return { action, entries };
    });
}

const LIMIT_OF: Readonly<Record<string, number>> = {
  user_id: ID_MAX,
  tx_id: ID_MAX,
  round_id: ID_MAX,
  game_session_id: ID_MAX,
  game_id: ID_MAX,
  bet_tx_id: ID_MAX,
  session_id: SESSION_ID_MAX,
};
const FIELDS = ['action', 'user_id', 'currency', 'session_id', 'game_id', 'game_session_id', 'tx_id', 'round_id'];
const ALL_FIELDS = [...FIELDS, 'amount', 'bet_tx_id'];

const badAmountArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '1e2',
    '"1e2"',
    '1E-2',
    '-1',
    '"-1"',
    '-0',
    '"-0.00"',
    '"1.234"',
    '1.234',
    '"1.0000000000000000001"',
    '"01"',
    '00.5',
    '"00"',
    '" 1"',
    '"1 "',
    '"\\t1"',
    '"1."',
    '".5"',
    '"+1"',
    '"0x10"',
    '"1,5"',
    '"1_000"',
    '"１"',
    '"NaN"',
    '"Infinity"',
    '""',
    '1e999999',
    '"9999999999999999999999999"',
    '99999999999999999999999999.5',
    'true',
    'null',
    '[]',
    '{}',
    '["1"]',
  ),
  // Generated decimals: sign, leading zeros, fraction length, exponent, spaces, quoted or not.
  fc
    .record({
      sign: fc.constantFrom('', '', '-', '+'),
      zeros: fc.constantFrom('', '', '0', '00'),
      whole: fc.stringMatching(/^[0-9]{1,30}$/),
      fraction: fc.option(fc.stringMatching(/^[0-9]{0,20}$/), { nil: undefined }),
      exponent: fc.option(fc.constantFrom('e2', 'E-1', 'e+0'), { nil: undefined }),
      space: fc.constantFrom('', '', ' ', '\\n'),
      quoted: fc.boolean(),
    })
    .map(({ sign, zeros, whole, fraction, exponent, space, quoted }) => {
      const text = `${sign}${zeros}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent ?? ''}`;
      return quoted ? `"${space}${text}"` : text;
    }),
);

const typeChangeArb = fc.oneof(
  fc.constantFrom('42', '0', '-7', '12.5', '1e3', 'true', 'false', 'null', '[]', '{}', '["x"]', '{"a":"b"}'),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
);

type Mutation = (entries: Entries) => Entries;
const pickIndex = (entries: Entries, n: number) => (entries.length === 0 ? -1 : n % entries.length);
const setField = (entries: Entries, key: string, raw: string): Entries => {
  const at = entries.findIndex(([k]) => k === key);
  if (at === -1) return [...entries, [key, raw]];
  return entries.map((e, i) => (i === at ? [key, raw] : e));
};

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // Drop a field.
  fc.nat().map((n) => (entries: Entries) => entries.filter((_, i) => i !== pickIndex(entries, n))),
  // Change a field's type.
  fc.tuple(fc.constantFrom(...ALL_FIELDS), typeChangeArb).map(
    ([key, raw]) =>
      (entries: Entries) =>
        setField(entries, key, raw),
  ),
  // Strings around each field's limit (mostly past it), ASCII or not, or empty.
  fc
    .record({
      key: fc.constantFrom(...Object.keys(LIMIT_OF)),
      extra: fc.integer({ min: -1, max: 40 }),
      unit: fc.constantFrom('a', 'é', '🎲', '\u200f'),
    })
    .map(({ key, extra, unit }) => (entries: Entries) => {
      const length = Math.max(0, (LIMIT_OF[key] ?? ID_MAX) + extra);
      return setField(entries, key, q(unit.repeat(length)));
    }),
  fc.constantFrom(...Object.keys(LIMIT_OF)).map((key) => (entries: Entries) => setField(entries, key, '""')),
  // Bad amounts.
  badAmountArb.map((raw) => (entries: Entries) => setField(entries, 'amount', raw)),
  // Unknown extra fields (any name, any JSON value).
  fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !ALL_FIELDS.includes(k)),
      fc.jsonValue({ maxDepth: 4 }),
    )
    .map(
      ([key, value]) =>
        (entries: Entries) =>
          setField(entries, key, JSON.stringify(value)),
    ),
  // Currencies: unknown, malformed, or another configured one.
  fc
    .oneof(
      fc.stringMatching(/^[A-Z0-9]{2,10}$/),
      fc.constantFrom('usd', 'US', 'U', 'USDUSDUSDUS', 'UЅD', 'US D', '', 'EUR', 'BTC', 'ETH', 'JPY'),
    )
    .map((currency) => (entries: Entries) => setField(entries, 'currency', q(currency))),
  // The action field, on either endpoint style.
  fc
    .constantFrom('"balance"', '"bet"', '"win"', '"refund"', '"BET"', '""', 'null', '1', '"void"')
    .map((raw) => (entries: Entries) => setField(entries, 'action', raw)),
  // Another player, or a session that does not exist.
  fc.tuple(fc.constantFrom('user_id', 'session_id', 'game_session_id', 'bet_tx_id'), idArb).map(
    ([key, id]) =>
      (entries: Entries) =>
        setField(entries, key, q(`other-${id}`)),
  ),
);

const mutatedArb: fc.Arbitrary<Input> = endpointArb.chain((endpoint) =>
  fc
    .tuple(validBodyArb(endpoint), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), jsonTypeArb)
    .map(([base, mutations, contentType]) => ({
      kind: 'mutation',
      endpoint,
      contentType,
      payload: Buffer.from(serialize(mutations.reduce((entries, mutate) => mutate(entries), base.entries))),
    })),
);

const randomJsonArb: fc.Arbitrary<Input> = fc
  .tuple(
    endpointArb,
    fc.oneof(
      fc.json({ maxDepth: 6 }),
      fc.json({ maxDepth: 4, stringUnit: 'binary' }),
      fc.jsonValue({ maxDepth: 20, depthSize: 'large' }).map((v) => JSON.stringify(v)),
      fc.dictionary(fc.constantFrom(...ALL_FIELDS), fc.jsonValue({ maxDepth: 2 })).map((v) => JSON.stringify(v)),
    ),
    jsonTypeArb,
  )
  .map(([endpoint, text, contentType]) => ({ kind: 'random JSON', endpoint, contentType, payload: Buffer.from(text) }));

const INVALID_UTF8 = [
  [0xc3, 0x28],
  [0xff],
  [0x80],
  [0xed, 0xa0, 0x80],
  [0xc0, 0xaf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
];
const deep = (depth: number, array: boolean) =>
  array ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"x":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** Hostile transformations of a valid body's text (which is its entries and serialization). */
const hostileArb: fc.Arbitrary<Input> = endpointArb.chain((endpoint) =>
  fc
    .tuple(validBodyArb(endpoint), fc.nat(), jsonTypeArb)
    .chain(([base, n, contentType]) => {
      const text = serialize(base.entries);
      const at = 1 + (n % (text.length - 1));
      const withExtra = (raw: string) => Buffer.from(serialize([...base.entries, ['extra', raw]]));
      const firstKey = base.entries[0]?.[0] ?? 'user_id';
      const variants: fc.Arbitrary<[string, Buffer | string]>[] = [
        fc.constant(['truncated', text.slice(0, at)]),
        fc.constant(['empty', '']),
        fc
          .constantFrom(...INVALID_UTF8)
          .map((bytes) => [
            'invalid UTF-8',
            Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(bytes), Buffer.from(text.slice(at))]),
          ]),
        fc
          .constantFrom(...INVALID_UTF8)
          .map((bytes) => ['invalid UTF-8 in a value', withExtra(`"a${Buffer.from(bytes).toString('latin1')}"`)]),
        fc.constant([
          'raw NUL',
          Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0]), Buffer.from(text.slice(at))]),
        ]),
        fc.constant(['escaped NUL', withExtra('"a\\u0000b"')]),
        fc.constant(['NUL in an id', text.replace(VICTIM, `${VICTIM}\\u0000`)]),
        fc.constant(['lone surrogate', withExtra('"\\udc00"')]),
        fc
          .constantFrom('1e999999', '-1e-999999', `1${'0'.repeat(400)}`, `0.${'0'.repeat(400)}1`)
          .map((num) => ['huge number in an unknown field', withExtra(num)]),
        fc
          .tuple(fc.integer({ min: 10, max: 24 }), fc.boolean())
          .map(([depth, array]) => ['deep nesting', withExtra(deep(depth, array))]),
        fc.constant(['5000 deep', withExtra(deep(5000, true))]),
        fc.constant([
          'duplicated key',
          Buffer.from(serialize([...base.entries, base.entries[1] ?? ['currency', '"USD"']])),
        ]),
        fc.constant(['duplicated key by escape', `${text.slice(0, -1)},"\\u0075ser_id":"someone-else"}`]),
        fc
          .tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.boolean())
          .map(([key, nested]) => [
            `${key} key`,
            nested
              ? withExtra(`{"a":[{${q(key)}:{"polluted":true}}]}`)
              : `${text.slice(0, -1)},${q(key)}:{"amount":"0"}}`,
          ]),
        fc.constant(['BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])]),
        fc.constant([
          'two BOMs',
          Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), Buffer.from(text)]),
        ]),
        fc.constant(['UTF-16 BOM', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text)])]),
        fc.constant(['UTF-16 body', Buffer.from(text, 'utf16le')]),
        fc
          .constantFrom('x', ' // c', '/* c */', ',', text, '\u00a0', '\0')
          .map((tail) => ['trailing data', `${text}${tail}`]),
        fc.constant(['single quotes', text.replaceAll('"', "'")]),
        fc.constant(['NaN amount', text.replace(/"amount":[^,}]+/, '"amount":NaN')]),
        fc.constant(['key without quotes', text.replace(`"${firstKey}"`, firstKey)]),
        fc.uint8Array({ maxLength: 64 }).map((bytes) => ['random bytes', Buffer.from(bytes)]),
        fc.string({ unit: 'binary', maxLength: 64 }).map((s) => ['random string', s]),
        fc.integer({ min: 1, max: 3000 }).map((pad) => ['oversized', withExtra(q('x'.repeat(16 * 1024 + pad)))]),
        fc
          .integer({ min: -200, max: -1 })
          .map((pad) => ['just under the limit', withExtra(q('x'.repeat(16 * 1024 - 150 + pad)))]),
      ];
      return fc.tuple(fc.oneof(...variants), fc.constant(contentType));
    })
    .chain(([[kind, payload], contentType]) =>
      fc
        .oneof(
          { weight: 9, arbitrary: fc.constant(contentType) },
          {
            weight: 1,
            arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml'),
          },
        )
        .map((type) => ({
          kind,
          endpoint,
          contentType: type,
          payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
        })),
    ),
);

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

const stack = await startStack({ label: 'gw_fuzz' });
t.teardown(() => stack.close());
const configured: Configured = { bodyLimit: stack.config.bodyLimitBytes, currencies: stack.config.currencies };
for (const [code, decimals] of Object.entries(DECIMALS)) {
  if (configured.currencies.get(code) !== decimals)
    throw new Error(`${code} is not configured with ${decimals} decimals`);
}
const FUNDED: Readonly<Record<string, string>> = { USD: '1000.00', JPY: '100000' };
/** The victim's balance per currency as the ledger must hold it: moved only by 200 answers. */
const expected = new Map<string, string>(Object.entries(FUNDED));
for (const [currency, amount] of Object.entries(FUNDED)) await stack.fund(VICTIM, currency, amount);

async function walletCalls(): Promise<number> {
  const metric = await stack.wallet.metrics.calls.get();
  return metric.values.reduce((sum, v) => sum + v.value, 0);
}

async function checkBalances(): Promise<void> {
  for (const [currency, balance] of expected) {
    const actual = await stack.balance(VICTIM, currency);
    if (actual !== balance) throw new Error(`victim's ${currency} balance ${actual}, expected ${balance}`);
  }
}

const describe = (input: Input) =>
  `${input.kind} → ${input.endpoint.path} (${input.contentType}): ${JSON.stringify(input.payload.toString('utf8').slice(0, 300))}`;

let sent = 0;
let answered200 = 0;

/** One request and every property of it; throws (for fast-check to shrink) on any violation. */
async function check(input: Input): Promise<void> {
  const fail = (why: string, res?: LightMyRequestResponse): never => {
    throw new Error(`${why}\n  input: ${describe(input)}\n  answer: ${res?.statusCode} ${res?.body.slice(0, 300)}`);
  };
  const expect = verdict(input.endpoint, input.payload, input.contentType, configured);
  const callsBefore = await walletCalls();
  let res: LightMyRequestResponse;
  try {
    res = await stack.post(input.endpoint.path, input.payload, { contentType: input.contentType });
  } catch (error) {
    return fail(`inject threw: ${(error as Error).stack}`);
  }
  sent++;
  const walletDelta = (await walletCalls()) - callsBefore;

  if (res.statusCode === 500) fail('500', res);
  if (!STATUSES.has(res.statusCode)) fail('status not in the contract', res);
  if (!/^application\/json/.test(String(res.headers['content-type']))) fail('answer not typed JSON', res);
  let answer: unknown;
  try {
    answer = JSON.parse(res.body);
  } catch {
    fail('answer is not JSON', res);
  }
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) return fail('answer not an object', res);
  const fields = answer as Record<string, unknown>;
  const keys = Object.keys(fields).sort().join(',');

  if (res.statusCode !== 200) {
    if (keys !== 'code,error') fail('error answer is not exactly {error, code}', res);
    const entry = typeof fields.code === 'string' ? CODES[fields.code] : undefined;
    if (entry === undefined) return fail('error code not in the contract', res);
    if (entry[0] !== res.statusCode) fail(`code ${String(fields.code)} maps to ${entry[0]}`, res);
    if (typeof fields.error !== 'string' || !fields.error.includes(entry[1])) fail(`message lacks "${entry[1]}"`, res);
  }

  if (!expect.valid) {
    if (res.statusCode !== expect.status || fields.code !== expect.code) {
      fail(`invalid input: expected ${expect.status} ${expect.code}`, res);
    }
    if (walletDelta !== 0) fail(`invalid input reached the wallet (${walletDelta} calls)`, res);
    return;
  }

  if (res.statusCode !== 200) {
    if (!DECIDED_CODES.has(String(fields.code))) fail('a valid body got a validation or server error', res);
    return;
  }
  answered200++;
  const { action, body } = expect;
  const currency = body.get('currency') as string;
  const decimals = configured.currencies.get(currency) ?? -1;
  const want = action === 'balance' ? 'balance,currency' : 'balance,currency,tx_id';
  if (keys !== want) fail(`200 answer fields ${keys}, expected ${want}`, res);
  if (fields.currency !== currency) fail('200 answer currency differs', res);
  if (action !== 'balance' && fields.tx_id !== body.get('tx_id')) fail('200 answer tx_id differs', res);
  const balanceRe = new RegExp(decimals === 0 ? '^(0|[1-9][0-9]*)$' : `^(0|[1-9][0-9]*)\\.[0-9]{${decimals}}$`);
  if (typeof fields.balance !== 'string' || !balanceRe.test(fields.balance)) fail('balance not exact decimals', res);
  // A replay (same tx_id, e.g. while shrinking) repeats the first answer: its balance is history.
  const replayed = res.headers['idempotent-replayed'] === 'true';
  if (body.get('user_id') === VICTIM && expected.has(currency) && !replayed) {
    if (action === 'balance' && fields.balance !== expected.get(currency)) fail('balance answer differs', res);
    expected.set(currency, fields.balance as string);
  }
  await checkBalances().catch((error: Error) => fail(error.message, res));
}

const properties: [string, fc.Arbitrary<Input>, number][] = [
  ['random JSON texts', randomJsonArb, RUNS.randomJson],
  ['hostile bytes and non-JSON', hostileArb, RUNS.hostile],
  ['mutations of valid bodies', mutatedArb, RUNS.mutations],
];

t.test(`fuzz: body parsing and validation (FUZZ_SEED=${SEED})`, async (t) => {
  const started = Date.now();
  for (const [name, arb, numRuns] of properties) {
    const details = await fc.check(
      fc.asyncProperty(arb, async (input) => check(input)),
      { seed: SEED, numRuns, endOnFailure: false },
    );
    if (details.failed) {
      t.fail(`${name}: ${String(details.errorInstance)}`);
      t.comment(fc.defaultReportMessage(details) ?? '');
    } else t.pass(`${name}: ${numRuns} runs`);
    await checkBalances().then(
      () => t.pass(`${name}: the victim's balances are the ones the 200 answers gave`),
      (error: Error) => t.fail(error.message),
    );
  }
  t.ok(answered200 > 20, `valid bodies got through (${answered200} answers 200 of ${sent})`);
  t.comment(`${sent} requests in ${Date.now() - started} ms`);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.same(await stack.wallet.ledger.checkBooks(), {
    unbalancedCurrencies: [],
    driftedAccounts: [],
    negativeAccounts: [],
  });
});
