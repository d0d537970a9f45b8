/**
 * Contract section 3 through HTTP against the real wallet: signatures over the raw bytes (altered
 * byte, re-serialized JSON, missing header, rotated keys), the IP allowlist with presets and CIDR,
 * trusted proxies, the three modes, the order of the checks, and log redaction.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { signBody } from '../../gateway/src/auth/signature.js';
import { createLogger } from '../../gateway/src/logger.js';
import { startGateway } from '../../gateway/src/server.js';
import { expectError, json, OTHER_KEY, post, TEST_KEY, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_security' });
t.teardown(() => stack.close());
const user = uid('sec');
await stack.fund(user, 'USD', '100');
const bet = (fields: Record<string, unknown> = {}) => moneyBody({ user_id: user, amount: '1', ...fields });

t.test('signature over the raw bytes', async (t) => {
  const good = await stack.post('/phia/bet', bet());
  t.equal(good.statusCode, 200, 'signed with the key: accepted');

  const body = JSON.stringify(bet({ amount: '10' }));
  const signature = signBody(TEST_KEY, body);
  const altered = body.replace('"10"', '"19"');
  expectError(
    t,
    await stack.post('/phia/bet', altered, { signature }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'one altered byte',
  );
  const flipped = (signature[10] === 'a' ? 'b' : 'a') + '';
  const badSig = signature.slice(0, 10) + flipped + signature.slice(11);
  expectError(
    t,
    await stack.post('/phia/bet', body, { signature: badSig }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'one altered hex digit',
  );

  // The same JSON, re-serialized: other bytes, so the signature of the compact form does not match.
  const pretty = JSON.stringify(JSON.parse(body), null, 2);
  expectError(
    t,
    await stack.post('/phia/bet', pretty, { signature }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    're-serialized JSON',
  );
  // Signed as sent (pretty, with odd spacing and key order), it is accepted: the raw bytes count.
  const odd = `{ "amount" : "1.00" ,\n "tx_id":"${uid('tx')}", "round_id":"r", "game_session_id":"g", "currency":"USD", "user_id":"${user}" }`;
  t.equal((await stack.post('/phia/bet', odd)).statusCode, 200, 'any byte layout, signed as sent');

  expectError(
    t,
    await stack.post('/phia/bet', bet(), { key: null }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'missing header',
  );
  expectError(
    t,
    await stack.post('/phia/bet', bet(), { signature: '' }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'empty header',
  );
  expectError(
    t,
    await stack.post('/phia/bet', bet(), { key: OTHER_KEY }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'unknown key',
  );
  expectError(
    t,
    await stack.post('/phia/balance', { user_id: user, currency: 'USD' }, { key: null }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'balance needs it too',
  );
  const upperBody = JSON.stringify(bet());
  const upper = await stack.post('/phia/bet', upperBody, {
    headers: { 'X-REQUEST-SIGN': signBody(TEST_KEY, upperBody) },
    key: null,
  });
  t.equal(upper.statusCode, 200, 'header name is case-insensitive');
});

t.test('the signature is checked before the body is parsed', async (t) => {
  expectError(
    t,
    await stack.post('/phia/bet', '{"user_id": ', { key: null }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'unsigned bad JSON',
  );
  expectError(
    t,
    await stack.post('/phia/bet', '{"user_id": '),
    400,
    'INVALID_REQUEST',
    'invalid request',
    'signed bad JSON',
  );
  const noBody = await stack.app.inject({ method: 'POST', url: '/phia/bet' });
  expectError(t, noBody, 401, 'INVALID_SIGNATURE', 'unauthorized', 'no body, no signature');
});

t.test('rotated keys: several at once, any one matches', async (t) => {
  const both = await stack.newApp({}, { PHIA_SIGNING_KEYS: `${OTHER_KEY},${TEST_KEY}` });
  t.equal((await post(both, '/phia/bet', bet(), { key: TEST_KEY })).statusCode, 200, 'old key');
  t.equal((await post(both, '/phia/bet', bet(), { key: OTHER_KEY })).statusCode, 200, 'new key');
  const rotated = await stack.newApp({}, { PHIA_SIGNING_KEYS: OTHER_KEY });
  expectError(
    t,
    await post(rotated, '/phia/bet', bet(), { key: TEST_KEY }),
    401,
    'INVALID_SIGNATURE',
    'unauthorized',
    'retired key',
  );
});

t.test('IP allowlist: peer address, IPv4 and IPv6, presets and CIDR', async (t) => {
  t.equal((await stack.post('/phia/bet', bet(), { remoteAddress: '::1' })).statusCode, 200, '::1');
  t.equal((await stack.post('/phia/bet', bet(), { remoteAddress: '::ffff:127.0.0.1' })).statusCode, 200, 'mapped');
  const before = await stack.balance(user, 'USD');
  expectError(
    t,
    await stack.post('/phia/bet', bet(), { remoteAddress: '8.8.8.8' }),
    403,
    'IP_NOT_ALLOWED',
    'ip not allowed',
    '8.8.8.8',
  );
  expectError(
    t,
    await stack.post('/phia/bet', bet(), { remoteAddress: '8.8.8.8', key: null }),
    403,
    'IP_NOT_ALLOWED',
    'ip not allowed',
    'checked before the signature',
  );
  t.equal(await stack.balance(user, 'USD'), before, 'refused requests moved nothing');

  const phia = await stack.newApp({}, { PHIA_ALLOWED_IPS: 'phia-staging,phia-production,2001:db8::/32,10.20.0.0/16' });
  for (const address of ['34.22.222.37', '104.155.124.243', '34.140.75.241', '2001:db8::7', '10.20.3.4']) {
    t.equal((await post(phia, '/phia/bet', bet(), { remoteAddress: address })).statusCode, 200, address);
  }
  for (const address of ['127.0.0.1', '34.22.222.38', '2001:db9::1', '10.21.0.1']) {
    t.equal((await post(phia, '/phia/bet', bet(), { remoteAddress: address })).statusCode, 403, address);
  }
  const health = await stack.app.inject({ method: 'GET', url: '/healthz', remoteAddress: '8.8.8.8' });
  t.equal(health.statusCode, 200, 'health is not behind PHIA auth');
});

t.test('trusted proxies: the right-most untrusted X-Forwarded-For entry', async (t) => {
  const proxied = await stack.newApp({}, { PHIA_ALLOWED_IPS: 'phia-staging', TRUST_PROXY: '10.0.0.0/8' });
  const via = (peer: string, xff?: string) =>
    post(proxied, '/phia/bet', bet(), {
      remoteAddress: peer,
      ...(xff === undefined ? {} : { headers: { 'x-forwarded-for': xff } }),
    });
  t.equal((await via('10.0.0.1', '34.22.222.37')).statusCode, 200, 'PHIA behind our proxy');
  t.equal((await via('10.0.0.1', '34.22.222.37, 10.0.0.9')).statusCode, 200, 'two proxies');
  t.equal((await via('10.0.0.1', '6.6.6.6, 34.22.222.37')).statusCode, 200, 'a spoofed left entry is ignored');
  t.equal((await via('10.0.0.1', '34.22.222.37, 6.6.6.6')).statusCode, 403, 'right-most untrusted is 6.6.6.6');
  t.equal((await via('10.0.0.1', '1.2.3.4')).statusCode, 403, 'someone else behind the proxy');
  t.equal((await via('10.0.0.1')).statusCode, 403, 'the proxy itself is not PHIA');
  t.equal((await via('8.8.8.8', '34.22.222.37')).statusCode, 403, 'header from an untrusted peer is ignored');

  const direct = await stack.newApp({}, { PHIA_ALLOWED_IPS: 'phia-staging' });
  const res = await post(direct, '/phia/bet', bet(), {
    remoteAddress: '10.0.0.1',
    headers: { 'x-forwarded-for': '34.22.222.37' },
  });
  t.equal(res.statusCode, 403, 'without TRUST_PROXY the header never counts');
});

t.test('modes: signature, ip, signature+ip', async (t) => {
  const ipOnly = await stack.newApp({}, { PHIA_AUTH_MODE: 'ip' });
  t.equal((await post(ipOnly, '/phia/bet', bet(), { key: null })).statusCode, 200, 'ip: no signature needed');
  t.equal((await post(ipOnly, '/phia/bet', bet(), { key: null, remoteAddress: '8.8.8.8' })).statusCode, 403);
  const sigOnly = await stack.newApp({}, { PHIA_AUTH_MODE: 'signature' });
  t.equal(
    (await post(sigOnly, '/phia/bet', bet(), { remoteAddress: '8.8.8.8' })).statusCode,
    200,
    'signature: any address',
  );
  t.equal((await post(sigOnly, '/phia/bet', bet(), { key: null, remoteAddress: '8.8.8.8' })).statusCode, 401);
  // signature+ip (the stack's default) needs both.
  t.equal((await stack.post('/phia/bet', bet(), { remoteAddress: '8.8.8.8' })).statusCode, 403);
  t.equal((await stack.post('/phia/bet', bet(), { key: null })).statusCode, 401);
});

t.test('over a real socket: raw bytes as sent by curl, peer 127.0.0.1, one log line, secrets redacted', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const gateway = await startGateway({
    config: { ...stack.config, host: '127.0.0.1', port: 0 },
    keyPrefix: stack.keyPrefix,
    logger: createLogger('info', sink),
    defaultMetrics: false,
  });
  t.teardown(() => gateway.close());
  const body = `{"user_id":"${user}","currency":"USD","tx_id":"${uid('tx')}","round_id":"round-x","game_session_id":"g","amount":2.5,"session_id":null}`;
  const signature = signBody(TEST_KEY, body);
  const res = await fetch(`${gateway.url}/phia/bet`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-sign': signature, 'x-request-id': 'req-123' },
    body,
  });
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-request-id'), 'req-123', 'request id echoed');
  t.ok(res.headers.get('x-content-type-options'), 'helmet headers');
  const answer = (await res.json()) as Record<string, unknown>;
  t.match(answer, { currency: 'USD', tx_id: JSON.parse(body).tx_id });

  const unsigned = await fetch(`${gateway.url}/phia/bet`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  t.equal(unsigned.status, 401);

  const requestLines = lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((l) => l.msg === 'phia request');
  t.equal(requestLines.length, 2, 'one line per request');
  t.match(requestLines[0], {
    action: 'bet',
    tx_id: JSON.parse(body).tx_id,
    round_id: 'round-x',
    status: 200,
    code: 'ok',
    client_ip: '127.0.0.1',
    reqId: 'req-123',
  });
  t.type(requestLines[0]?.duration_ms, 'number');
  t.match(requestLines[1], { action: 'bet', status: 401, code: 'INVALID_SIGNATURE' });
  const all = lines.join('\n');
  t.notMatch(all, signature, 'the signature is never logged');
  t.notMatch(all, TEST_KEY, 'the key is never logged');
});

t.test('log redaction of keys and tokens', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('info', sink);
  logger.info({ req: { headers: { 'x-request-sign': 'abc123' } }, config: { signingKeys: ['k-secret'] } }, 'x');
  logger.info({ signingKeys: ['k-secret'], session_id: 'sess-secret', body: { session_id: 'sess-secret' } }, 'y');
  const all = lines.join('');
  t.notMatch(all, 'abc123');
  t.notMatch(all, 'k-secret');
  t.notMatch(all, 'sess-secret');
  t.match(all, '[redacted]');
  t.same(json({ body: '{"a":1}' } as never), { a: 1 });
});
