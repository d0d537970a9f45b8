/**
 * Tracing across the real stack (gateway app, Redis, the wallet over gRPC, PostgreSQL), each service
 * with an in-memory exporter of its own: one signed bet is one trace from the gateway's request span
 * through the Redis and gRPC client spans to the wallet's server span and its SQL; replays,
 * mismatched copies and declines carry their outcome and error code.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import t from 'tap';
import { uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack, until } from '../helpers/gateway-stack.js';

const gatewaySpans = new InMemorySpanExporter();
const walletSpans = new InMemorySpanExporter();
const stack = await startStack({
  label: 'gw_trace',
  app: { spanExporter: gatewaySpans },
  wallet: { spanExporter: walletSpans },
});
t.teardown(() => stack.close());

const all = (): ReadableSpan[] => [...gatewaySpans.getFinishedSpans(), ...walletSpans.getFinishedSpans()];

/** The gateway's request span for `txId` (it ends in onResponse, which may follow inject's answer). */
async function requestSpan(txId: string, nth = 0): Promise<ReadableSpan> {
  const find = () =>
    gatewaySpans
      .getFinishedSpans()
      .filter((span) => span.kind === SpanKind.SERVER && span.attributes['phia.tx_id'] === txId)[nth];
  await until(() => find() !== undefined);
  const span = find();
  if (span === undefined) throw new Error(`no request span for ${txId}`);
  return span;
}

/** Every span of the request's trace, both services. */
function traceOf(request: ReadableSpan): ReadableSpan[] {
  return all().filter((span) => span.spanContext().traceId === request.spanContext().traceId);
}

const named = (spans: ReadableSpan[], name: string, kind?: SpanKind) =>
  spans.filter((span) => span.name === name && (kind === undefined || span.kind === kind));
const parentOf = (span: ReadableSpan | undefined) => span?.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan | undefined) => span?.spanContext().spanId;

t.test('one bet: one trace from the PHIA request to the wallet and its SQL', async (t) => {
  const user = uid('trace');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '2.50' });
  const answer = await stack.post('/phia/bet', bet);
  t.equal(answer.statusCode, 200);

  const request = await requestSpan(bet.tx_id as string);
  const spans = traceOf(request);
  t.equal(request.name, 'POST /phia/bet');
  t.equal(parentOf(request), undefined, 'the request span is the root');
  t.match(request.attributes, {
    'phia.tx_id': bet.tx_id,
    'phia.action': 'bet',
    'http.route': '/phia/bet',
    'http.response.status_code': 200,
  });
  t.notOk('phia.error_code' in request.attributes, 'no error code on a 200');
  t.equal(request.status.code, SpanStatusCode.UNSET);
  t.equal(request.resource.attributes['service.name'], 'phia-gateway');

  const [begin] = named(spans, 'idempotency begin');
  const [complete] = named(spans, 'idempotency complete');
  t.equal(parentOf(begin), idOf(request), 'Redis begin under the request');
  t.equal(parentOf(complete), idOf(request), 'Redis complete under the request');
  t.match(begin?.attributes, { 'phia.outcome': 'acquired', 'db.system.name': 'redis' });
  t.match(complete?.attributes, { 'phia.outcome': 'stored' });

  const [client] = named(spans, 'wallet.v1.Wallet/Bet', SpanKind.CLIENT);
  t.equal(parentOf(client), idOf(request), 'the gRPC call under the request');
  t.match(client?.attributes, { 'rpc.system': 'grpc', 'rpc.method': 'Bet', 'rpc.grpc.status_code': 0 });

  const [server] = named(spans, 'wallet.v1.Wallet/Bet', SpanKind.SERVER);
  t.ok(server, 'the wallet span is in the same trace');
  t.equal(parentOf(server), idOf(client), 'the wallet span under the gRPC client span (metadata)');
  t.equal(server?.parentSpanContext?.isRemote, true);
  t.equal(server?.resource.attributes['service.name'], 'phia-wallet');
  t.match(server?.attributes, { 'phia.tx_id': bet.tx_id, 'rpc.grpc.status_code': 0 });

  const sql = spans.filter((span) => span.attributes['db.system.name'] === 'postgresql');
  t.ok(sql.length >= 1, `${sql.length} SQL span(s)`);
  for (const span of sql) t.equal(parentOf(span), idOf(server), `${span.name} under the wallet span`);

  // What spans may say of a request: its tx_id and kind, never who or how much.
  const values = spans.flatMap((span) => Object.values(span.attributes).map(String));
  t.notOk(values.includes(user), 'no user id in any attribute');
  t.notOk(
    values.some((value) => value.includes('2.50') || value === '250'),
    'no amount in any attribute',
  );
});

t.test('an exact copy is a replay: no wallet call; a changed copy is a mismatch', async (t) => {
  const user = uid('trace-copy');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '1.00' });
  t.equal((await stack.post('/phia/bet', bet)).statusCode, 200);
  await requestSpan(bet.tx_id as string, 0);

  const copy = await stack.post('/phia/bet', bet);
  t.equal(copy.statusCode, 200);
  const replay = await requestSpan(bet.tx_id as string, 1);
  t.match(replay.attributes, { 'phia.replayed': true, 'http.response.status_code': 200 });
  const replaySpans = traceOf(replay);
  t.match(named(replaySpans, 'idempotency begin')[0]?.attributes, { 'phia.outcome': 'replay' });
  t.same(named(replaySpans, 'wallet.v1.Wallet/Bet'), [], 'the wallet was not called');

  const changed = await stack.post('/phia/bet', { ...bet, amount: '2.00' });
  t.equal(changed.statusCode, 409);
  const mismatch = await requestSpan(bet.tx_id as string, 2);
  t.match(mismatch.attributes, {
    'phia.error_code': 'IDEMPOTENCY_MISMATCH',
    'http.response.status_code': 409,
  });
  t.equal(mismatch.status.code, SpanStatusCode.UNSET, 'an answer, not a fault');
  t.match(named(traceOf(mismatch), 'idempotency begin')[0]?.attributes, { 'phia.outcome': 'mismatch' });
});

t.test('a declined bet carries its error code on both sides of the call', async (t) => {
  const user = uid('trace-poor');
  await stack.fund(user, 'USD', '1');
  const bet = moneyBody({ user_id: user, amount: '5.00' });
  const answer = await stack.post('/phia/bet', bet);
  t.equal(answer.statusCode, 402);

  const request = await requestSpan(bet.tx_id as string);
  t.match(request.attributes, { 'phia.error_code': 'INSUFFICIENT_FUNDS', 'http.response.status_code': 402 });
  t.equal(request.status.code, SpanStatusCode.UNSET, 'a decline is not a fault');
  const spans = traceOf(request);
  const [client] = named(spans, 'wallet.v1.Wallet/Bet', SpanKind.CLIENT);
  const [server] = named(spans, 'wallet.v1.Wallet/Bet', SpanKind.SERVER);
  t.match(client?.attributes, { 'phia.error_code': 'INSUFFICIENT_FUNDS' });
  t.match(server?.attributes, { 'phia.error_code': 'INSUFFICIENT_FUNDS', 'phia.tx_id': bet.tx_id });
  t.equal(parentOf(server), idOf(client));
  t.match(named(spans, 'idempotency complete')[0]?.attributes, { 'phia.outcome': 'stored' }, 'the decline is stored');
});

t.test('a request refused before the handler still gets its span', async (t) => {
  const bet = moneyBody();
  const answer = await stack.post('/phia/bet', bet, { key: 'wrong-key-0123456789' });
  t.equal(answer.statusCode, 401);
  const span = await until(() =>
    gatewaySpans
      .getFinishedSpans()
      .some((each) => each.attributes['phia.error_code'] === 'INVALID_SIGNATURE' && each.name === 'POST /phia/bet'),
  );
  t.ok(span, 'a span with INVALID_SIGNATURE');
});

t.test('concurrent bets keep their own traces', async (t) => {
  const user = uid('trace-many');
  await stack.fund(user, 'USD', '100');
  const bets = Array.from({ length: 10 }, () => moneyBody({ user_id: user, amount: '1.00' }));
  const answers = await Promise.all(bets.map((bet) => stack.post('/phia/bet', bet)));
  t.same(
    answers.map((answer) => answer.statusCode),
    Array(10).fill(200),
  );
  for (const bet of bets) {
    const request = await requestSpan(bet.tx_id as string);
    const spans = traceOf(request);
    const [server] = named(spans, 'wallet.v1.Wallet/Bet', SpanKind.SERVER);
    t.equal(server?.attributes['phia.tx_id'], bet.tx_id, 'the wallet span of this bet, in its trace');
    t.equal(named(spans, 'idempotency begin').length, 1, 'one begin in the trace');
    t.equal(named(spans, 'wallet.v1.Wallet/Bet', SpanKind.CLIENT).length, 1, 'one wallet call in the trace');
  }
});
