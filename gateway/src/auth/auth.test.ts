import t from 'tap';
import { createHmac } from 'node:crypto';
import { clientAddress, IpMatcher, normalizeAddress, parseIpList, parseIpRule } from './ip.js';
import { signBody, SignatureVerifier } from './signature.js';

t.test('signature: lowercase hex HMAC-SHA256 of the raw bytes', async (t) => {
  const raw = Buffer.from('{"user_id":"u1","currency":"USD"}');
  const expected = createHmac('sha256', 'k1').update(raw).digest('hex');
  t.equal(signBody('k1', raw), expected);
  t.match(signBody('k1', raw), /^[0-9a-f]{64}$/);

  const verifier = new SignatureVerifier(['k1']);
  t.ok(verifier.verify(raw, expected));
  t.ok(verifier.verify(raw, expected.toUpperCase()), 'hex case does not matter');
  t.ok(verifier.verify(raw, ` ${expected} `), 'surrounding spaces are ignored');
  t.notOk(verifier.verify(raw, undefined), 'missing header');
  t.notOk(verifier.verify(raw, ''), 'empty header');
  t.notOk(verifier.verify(raw, [expected, expected]), 'repeated header');
  t.notOk(verifier.verify(raw, expected.slice(0, 63)), 'short');
  t.notOk(verifier.verify(raw, expected + '0'), 'long');
  t.notOk(verifier.verify(raw, 'z'.repeat(64)), 'not hex');
  const flipped = (expected[0] === 'a' ? 'b' : 'a') + expected.slice(1);
  t.notOk(verifier.verify(raw, flipped), 'one altered character of the signature');

  const altered = Buffer.from(raw);
  altered[5] = (altered[5] as number) ^ 1;
  t.notOk(verifier.verify(altered, expected), 'one altered byte of the body');
  const reserialized = Buffer.from(JSON.stringify(JSON.parse(raw.toString()), null, 1));
  t.notOk(verifier.verify(reserialized, expected), 're-serialized JSON is different bytes');
  t.notOk(verifier.verify(raw, signBody('k2', raw)), 'another key');
});

t.test('signature: several keys (rotation)', async (t) => {
  const raw = Buffer.from('{}');
  const verifier = new SignatureVerifier(['old', 'new']);
  t.ok(verifier.verify(raw, signBody('old', raw)));
  t.ok(verifier.verify(raw, signBody('new', raw)));
  t.notOk(verifier.verify(raw, signBody('other', raw)));
  t.throws(() => new SignatureVerifier([]));
});

t.test('ip rules', async (t) => {
  t.match(parseIpRule('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  t.match(parseIpRule('2001:DB8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
  t.match(parseIpRule('::ffff:1.2.3.4'), { address: '1.2.3.4', prefix: 32, family: 'ipv4' });
  t.type(parseIpRule('1.2.3.4/33'), 'string');
  t.type(parseIpRule('1.2.3/24'), 'string');
  t.type(parseIpRule('example.com'), 'string');
  t.type(parseIpRule('::1/129'), 'string');
  t.type(parseIpRule('1.2.3.4/x'), 'string');

  const problems: string[] = [];
  const rules = parseIpList('phia-staging, phia-production,10.1.0.0/16,, ::1', problems, 'X');
  t.same(problems, []);
  t.same(
    rules.map((rule) => rule.text),
    ['34.22.222.37', '104.155.124.243', '34.140.75.241', '10.1.0.0/16', '::1'],
  );
  parseIpList('nope,1.2.3.4/99', problems, 'X');
  t.equal(problems.length, 2);
  t.match(problems[0], /X: "nope" is not an IP address/);
});

t.test('ip matching, IPv4 and IPv6, mapped addresses', async (t) => {
  const matcher = new IpMatcher(parseIpList('phia-production,10.0.0.0/8,2001:db8::/32', [], 'X'));
  t.ok(matcher.has('104.155.124.243'));
  t.ok(matcher.has('34.140.75.241'));
  t.notOk(matcher.has('34.22.222.37'), 'staging is not production');
  t.ok(matcher.has('10.255.1.2'));
  t.ok(matcher.has('::ffff:10.1.1.1'), 'IPv4-mapped IPv6 peer');
  t.notOk(matcher.has('11.0.0.1'));
  t.ok(matcher.has('2001:db8:1::5'));
  t.ok(matcher.has('2001:DB8::1'));
  t.notOk(matcher.has('2001:db9::1'));
  t.notOk(matcher.has('garbage'));
  t.notOk(matcher.has(undefined));
  t.equal(normalizeAddress('::FFFF:1.2.3.4'), '1.2.3.4');
  t.equal(normalizeAddress('fe80::1%eth0'), 'fe80::1');
});

t.test('client address behind trusted proxies', async (t) => {
  const trusted = new IpMatcher(parseIpList('10.0.0.0/8,::1', [], 'X'));
  const none = new IpMatcher([]);
  // Untrusted peer: X-Forwarded-For is ignored (anyone can write it).
  t.equal(clientAddress('203.0.113.9', '34.22.222.37', trusted), '203.0.113.9');
  t.equal(clientAddress('10.0.0.5', '34.22.222.37', none), '10.0.0.5', 'no trusted proxies: the peer');
  // Trusted peer: the right-most untrusted entry.
  t.equal(clientAddress('10.0.0.5', '34.22.222.37', trusted), '34.22.222.37');
  t.equal(
    clientAddress('10.0.0.5', '1.1.1.1, 34.22.222.37, 10.0.0.7', trusted),
    '34.22.222.37',
    'spoofed left entry ignored',
  );
  t.equal(clientAddress('::ffff:10.0.0.5', ['1.1.1.1', '34.22.222.37:443'], trusted), '34.22.222.37');
  t.equal(clientAddress('::1', '[2001:db8::1]:8443', trusted), '2001:db8::1');
  t.equal(clientAddress('10.0.0.5', '10.0.0.8, 10.0.0.7', trusted), '10.0.0.8', 'all trusted: left-most');
  t.equal(clientAddress('10.0.0.5', 'not-an-ip, 10.0.0.7', trusted), 'not-an-ip');
  t.equal(clientAddress('10.0.0.5', undefined, trusted), '10.0.0.5');
  t.equal(clientAddress('10.0.0.5', ' , ', trusted), '10.0.0.5');
});
