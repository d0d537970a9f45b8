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
  t.match(problemsOf({ ...prod, PHIA_SIGNING_KEYS: 'k', TRUST_PROXY: '0.0.0.0/0' }), [
    /TRUST_PROXY must not trust every/,
  ]);
  const ok = loadConfig({ ...prod, PHIA_SIGNING_KEYS: 'k', PHIA_ALLOWED_IPS: 'phia-production' });
  t.equal(ok.authMode, 'signature+ip');
  t.equal(ok.generatedDevKey, undefined);
  t.equal(ok.production, true);
  t.same(problemsOf({ ...prod, PHIA_AUTH_MODE: 'ip', PHIA_ALLOWED_IPS: 'phia-staging' }), []);
  // Outside production a wildcard is allowed (local testing).
  t.equal(loadConfig({ PHIA_ALLOWED_IPS: '*' }).allowedIps.length, 2);
});
