import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ConfigError, loadConfig, type Env } from './config.js';

const problemsOf = (env: Env): readonly string[] => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

t.test('defaults outside production', async (t) => {
  const config = loadConfig({});
  t.equal(config.host, '0.0.0.0');
  t.equal(config.port, 8080);
  t.equal(config.walletAddr, '127.0.0.1:50051');
  t.equal(config.redisUrl, undefined);
  t.equal(config.authMode, 'signature+ip');
  t.match(config.generatedDevKey, /^[0-9a-f]{64}$/);
  t.same(config.signingKeys, [config.generatedDevKey]);
  t.same(
    config.allowedIps.map((rule) => rule.text),
    ['127.0.0.1', '::1'],
  );
  t.same(config.trustProxy, []);
  t.equal(config.walletDeadlineMs, 2000);
  t.equal(config.idempotencyTtlSeconds, 86400);
  t.equal(config.bodyLimitBytes, 16384);
  t.equal(config.production, false);
  t.equal(config.logLevel, 'info');
  t.equal(config.currencies.get('USD'), 2);
  t.not(loadConfig({}).generatedDevKey, config.generatedDevKey, 'a fresh key per start');
});

t.test('every contract variable is read', async (t) => {
  const config = loadConfig({
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '9000',
    WALLET_ADDR: 'wallet:50052',
    REDIS_URL: 'redis://127.0.0.1:6379/2',
    PHIA_AUTH_MODE: 'signature',
    PHIA_SIGNING_KEYS: 'k1, k2,,',
    PHIA_ALLOWED_IPS: 'phia-staging',
    TRUST_PROXY: '10.0.0.0/8',
    WALLET_DEADLINE_MS: '300',
    IDEMPOTENCY_TTL_SECONDS: '60',
    PHIA_BODY_LIMIT_BYTES: '2048',
    LOG_LEVEL: 'debug',
    CURRENCIES: 'XAU:4',
  });
  t.match(config, {
    host: '127.0.0.1',
    port: 9000,
    walletAddr: 'wallet:50052',
    redisUrl: 'redis://127.0.0.1:6379/2',
    authMode: 'signature',
    signingKeys: ['k1', 'k2'],
    generatedDevKey: undefined,
    walletDeadlineMs: 300,
    idempotencyTtlSeconds: 60,
    bodyLimitBytes: 2048,
    logLevel: 'debug',
  });
  t.same(config.allowedIps, [], 'signature mode ignores the allowlist');
  t.equal(config.trustProxy[0]?.text, '10.0.0.0/8');
  t.equal(config.currencies.get('XAU'), 4);
});

t.test('default mode follows what is configured', async (t) => {
  t.equal(loadConfig({ PHIA_SIGNING_KEYS: 'k' }).authMode, 'signature');
  t.equal(loadConfig({ PHIA_ALLOWED_IPS: '10.0.0.1' }).authMode, 'ip');
  t.equal(loadConfig({ PHIA_SIGNING_KEYS: 'k', PHIA_ALLOWED_IPS: '10.0.0.1' }).authMode, 'signature+ip');
  const ipOnly = loadConfig({ PHIA_AUTH_MODE: 'ip' });
  t.same(ipOnly.signingKeys, []);
  t.equal(ipOnly.generatedDevKey, undefined, 'no key generated when no signature is checked');
});

t.test('one clear message per problem', async (t) => {
  const problems = problemsOf({
    GATEWAY_PORT: '70000',
    WALLET_ADDR: 'nowhere',
    REDIS_URL: 'http://x',
    PHIA_AUTH_MODE: 'both',
    PHIA_ALLOWED_IPS: '1.2.3.4/40,host',
    TRUST_PROXY: 'x',
    WALLET_DEADLINE_MS: '6000',
    IDEMPOTENCY_TTL_SECONDS: '-1',
    PHIA_BODY_LIMIT_BYTES: '1e4',
    TLS_CERT_FILE: '/nonexistent.pem',
    LOG_LEVEL: 'loud',
    CURRENCIES: 'usd:2',
  });
  for (const name of [
    'GATEWAY_PORT',
    'WALLET_ADDR',
    'REDIS_URL',
    'PHIA_AUTH_MODE',
    'PHIA_ALLOWED_IPS: "1.2.3.4/40"',
    'PHIA_ALLOWED_IPS: "host"',
    'TRUST_PROXY',
    'WALLET_DEADLINE_MS',
    'IDEMPOTENCY_TTL_SECONDS',
    'PHIA_BODY_LIMIT_BYTES',
    'TLS_CERT_FILE and TLS_KEY_FILE',
    'TLS_CERT_FILE: file not found',
    'LOG_LEVEL',
    'CURRENCIES',
  ]) {
    t.ok(
      problems.some((problem) => problem.startsWith(name)),
      `reports ${name}`,
    );
  }
  t.equal(problems.length, 14, problems.join('\n'));
  try {
    loadConfig({ GATEWAY_PORT: 'x' });
    t.fail('should throw');
  } catch (error) {
    t.match((error as Error).message, /invalid gateway configuration:\n {2}- GATEWAY_PORT must be an integer/);
  }
});

// A production-grade key: 32 bytes or more.
const KEY = 'k'.repeat(32);

t.test('production refuses unsafe settings', async (t) => {
  const prod = { NODE_ENV: 'production' };
  t.match(problemsOf(prod), [/PHIA_SIGNING_KEYS is required in production/, /PHIA_ALLOWED_IPS is required/]);
  t.match(problemsOf({ ...prod, PHIA_AUTH_MODE: 'signature' }), [/PHIA_SIGNING_KEYS is required in production/]);
  t.match(problemsOf({ ...prod, PHIA_AUTH_MODE: 'signature+ip', PHIA_ALLOWED_IPS: 'phia-production' }), [
    /PHIA_SIGNING_KEYS is required/,
  ]);
  for (const wildcard of ['0.0.0.0/0', '::/0', '*', '10.0.0.1,0.0.0.0/0']) {
    t.match(
      problemsOf({ ...prod, PHIA_AUTH_MODE: 'ip', PHIA_ALLOWED_IPS: wildcard }),
      [/must not allow every address/],
      wildcard,
    );
  }
  t.match(problemsOf({ ...prod, PHIA_SIGNING_KEYS: KEY, TRUST_PROXY: '0.0.0.0/0' }), [
    /TRUST_PROXY must not trust every/,
  ]);
  const ok = loadConfig({ ...prod, PHIA_SIGNING_KEYS: KEY, PHIA_ALLOWED_IPS: 'phia-production' });
  t.equal(ok.authMode, 'signature+ip');
  t.equal(ok.generatedDevKey, undefined);
  t.equal(ok.production, true);
  t.same(problemsOf({ ...prod, PHIA_AUTH_MODE: 'ip', PHIA_ALLOWED_IPS: 'phia-staging' }), []);
  // Outside production a wildcard is allowed (local testing).
  t.equal(loadConfig({ PHIA_ALLOWED_IPS: '*' }).allowedIps.length, 2);
});

t.test('production: an allowlist without a key needs PHIA_AUTH_MODE=ip said explicitly', async (t) => {
  const prod = { NODE_ENV: 'production', PHIA_ALLOWED_IPS: 'phia-production' };
  const problems = problemsOf(prod);
  t.equal(problems.length, 1, problems.join('\n'));
  t.match(problems[0], /^PHIA_ALLOWED_IPS is set without PHIA_SIGNING_KEYS: .*PHIA_AUTH_MODE=ip/);
  t.equal(loadConfig({ ...prod, PHIA_AUTH_MODE: 'ip' }).authMode, 'ip', 'explicit ip mode starts');
  t.equal(
    loadConfig({ NODE_ENV: 'production', PHIA_SIGNING_KEYS: KEY }).authMode,
    'signature',
    'a key alone: signature',
  );
  t.equal(loadConfig({ PHIA_ALLOWED_IPS: '10.0.0.1' }).authMode, 'ip', 'outside production the mode is inferred');
});

t.test('production: ranges wider than /8 (IPv4) or /32 (IPv6) need PHIA_ALLOW_WIDE_RANGES=true', async (t) => {
  const prod = { NODE_ENV: 'production', PHIA_SIGNING_KEYS: KEY };
  for (const [name, extra] of [
    ['PHIA_ALLOWED_IPS', {}],
    ['TRUST_PROXY', { PHIA_ALLOWED_IPS: 'phia-production' }],
  ] as const) {
    for (const wide of ['0.0.0.0/1,128.0.0.0/1', '10.0.0.0/7', '2000::/3', '::ffff:0:0/100', '10.0.0.1,64.0.0.0/2']) {
      const env = { ...prod, ...extra, PHIA_ALLOWED_IPS: 'phia-production', [name]: wide };
      const problems = problemsOf(env);
      t.equal(problems.length, 1, `${name}=${wide}: ${problems.join('; ')}`);
      t.match(problems[0], new RegExp(`^${name}: .* wider than /8 \\(IPv4\\) or /32 \\(IPv6\\)`), `${name}=${wide}`);
      t.same(problemsOf({ ...env, PHIA_ALLOW_WIDE_RANGES: 'true' }), [], `${name}=${wide} with the override`);
    }
    for (const narrow of ['10.0.0.0/8', '2001:db8::/32', '::ffff:a00:0/104', '34.22.222.37']) {
      t.same(
        problemsOf({ ...prod, ...extra, PHIA_ALLOWED_IPS: 'phia-production', [name]: narrow }),
        [],
        `${name}=${narrow}`,
      );
    }
  }
  t.match(
    problemsOf({ ...prod, PHIA_AUTH_MODE: 'ip', PHIA_ALLOWED_IPS: '::ffff:0:0/96', PHIA_ALLOW_WIDE_RANGES: 'true' }),
    [/must not allow every address/],
    'every IPv4 address as IPv4-mapped IPv6 is a wildcard, refused even with the override',
  );
  t.match(problemsOf({ ...prod, PHIA_ALLOW_WIDE_RANGES: 'yes' }), [/PHIA_ALLOW_WIDE_RANGES must be true or false/]);
  t.same(problemsOf({ PHIA_ALLOWED_IPS: '0.0.0.0/1,128.0.0.0/1' }), [], 'outside production wide ranges pass');
});

t.test('production: every signing key has at least 32 bytes; the message never shows a key', async (t) => {
  const prod = { NODE_ENV: 'production', PHIA_ALLOWED_IPS: 'phia-production' };
  const short = 'x'.repeat(31);
  for (const keys of ['k', short, `${KEY},${short}`]) {
    const problems = problemsOf({ ...prod, PHIA_SIGNING_KEYS: keys });
    t.equal(problems.length, 1, problems.join('\n'));
    t.match(problems[0], /^PHIA_SIGNING_KEYS: key \d of \d is shorter than 32 bytes/);
    t.notMatch(problems[0], short, 'the key is not in the message');
  }
  t.match(problemsOf({ ...prod, PHIA_SIGNING_KEYS: `${KEY},${short}` })[0], /key 2 of 2/);
  t.same(problemsOf({ ...prod, PHIA_SIGNING_KEYS: 'x'.repeat(32) }), [], '32 bytes pass');
  // Bytes, not characters: 11 three-byte characters are 33 bytes.
  t.same(problemsOf({ ...prod, PHIA_SIGNING_KEYS: '€'.repeat(11) }), []);
  t.same(problemsOf({ PHIA_SIGNING_KEYS: 'k' }), [], 'outside production a short key passes');
});

t.test('the wallet link: mutual TLS from the three files; production needs it beyond loopback', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'phia-gw-link-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = spawnSync('sh', [fileURLToPath(new URL('../../ops/wallet-tls/dev-ca.sh', import.meta.url)), dir]);
  t.equal(run.status, 0, 'dev CA made');
  const tls = {
    WALLET_TLS_CA_FILE: join(dir, 'ca.pem'),
    WALLET_TLS_CERT_FILE: join(dir, 'gateway.pem'),
    WALLET_TLS_KEY_FILE: join(dir, 'gateway.key'),
  };
  t.ok(loadConfig(tls).walletTls, 'TLS with the three files');
  t.equal(loadConfig({}).walletTls, undefined, 'plaintext without them');
  t.match(problemsOf({ WALLET_TLS_CERT_FILE: '/cert.pem' }), [
    /^WALLET_TLS_CA_FILE and WALLET_TLS_KEY_FILE must be set too/,
  ]);

  const prod = { NODE_ENV: 'production', PHIA_SIGNING_KEYS: 'k'.repeat(32) };
  t.match(problemsOf({ ...prod, WALLET_ADDR: 'wallet:50051' }), [/^WALLET_ADDR=wallet:50051 is another machine/]);
  t.same(problemsOf({ ...prod, WALLET_ADDR: 'wallet:50051', ...tls }), [], 'with TLS');
  t.same(problemsOf({ ...prod, WALLET_ADDR: '127.0.0.1:50051' }), [], 'loopback needs none');
  t.same(problemsOf({ WALLET_ADDR: 'wallet:50051' }), [], 'outside production plaintext passes');
});

t.test('REDIS_URL: one server, a Sentinel set or a Cluster; anything else is refused with a message', async (t) => {
  for (const url of [
    'redis://127.0.0.1:6379/2',
    'rediss://user:secret@cache.example:6380',
    'redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster',
    'redis+sentinel://:secret@s1:26379/mymaster/3',
    'redis+cluster://10.0.0.1:7000,10.0.0.2:7001',
    'rediss+cluster://user:secret@c1:7000',
  ]) {
    t.same(problemsOf({ REDIS_URL: url }), [], url);
  }
  for (const [url, message] of [
    ['http://x', /must be a redis/],
    ['redis+sentinel://s1:26379', /names its master/],
    ['redis+cluster://c1:7000/2', /no path/],
    ['redis+cluster://c1', /not host:port/],
    ['redis+sentinel://s1:99999/m', /not host:port/],
    ['redis+sentinel://s1:26379/m/x', /database must be a number/],
  ] as const) {
    const problems = problemsOf({ REDIS_URL: url });
    t.equal(problems.length, 1, url);
    t.match(problems[0], message, url);
  }
});

t.test('tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; a bad one is reported with the rest', async (t) => {
  t.same(loadConfig({}).tracing, { endpoint: undefined, serviceName: 'phia-gateway' });
  t.same(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SERVICE_NAME: 'gw-1' }).tracing, {
    endpoint: 'http://collector:4318',
    serviceName: 'gw-1',
  });
  t.match(problemsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318', WALLET_DEADLINE_MS: '1' }), [
    /^WALLET_DEADLINE_MS/,
    /^OTEL_EXPORTER_OTLP_ENDPOINT must be an http:\/\/ or https:\/\/ URL/,
  ]);
});
