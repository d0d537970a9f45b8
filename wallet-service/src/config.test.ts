import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ConfigError, loadWalletConfig } from './config.js';

t.test('defaults', async (t) => {
  const config = loadWalletConfig({});
  t.equal(config.host, '127.0.0.1', 'loopback unless opened on purpose (contract section 8)');
  t.equal(config.port, 50051);
  t.equal(config.databaseUrl, undefined);
  t.match(config.dataDir, /data\/wallet-pglite$/);
  t.equal(config.currencies.get('JPY'), 0);
});

t.test('every problem is reported, each with a clear message', async (t) => {
  try {
    loadWalletConfig({ WALLET_PORT: '70000', DATABASE_URL: 'mysql://x', CURRENCIES: 'USD:abc', LOG_LEVEL: 'loud' });
    t.fail('should have thrown');
  } catch (error) {
    t.type(error, ConfigError);
    const problems = (error as ConfigError).problems;
    t.equal(problems.length, 4);
    t.match(problems.join('\n'), /WALLET_PORT must be an integer from 0 to 65535/);
    t.match(problems.join('\n'), /DATABASE_URL must be a postgres/);
    t.match(problems.join('\n'), /CURRENCIES: currency entry "USD:abc"/);
    t.match(problems.join('\n'), /LOG_LEVEL must be one of/);
  }
});

t.test('production refuses the embedded database', async (t) => {
  t.throws(() => loadWalletConfig({ NODE_ENV: 'production' }), /DATABASE_URL is required in production/);
  t.equal(loadWalletConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/x' }).production, true);
});

t.test('CURRENCIES adds and overrides', async (t) => {
  const config = loadWalletConfig({ CURRENCIES: 'XAU:4,USD:3' });
  t.equal(config.currencies.get('XAU'), 4);
  t.equal(config.currencies.get('USD'), 3);
});

t.test('DATABASE_APPLICATION_NAME names the PostgreSQL connections', async (t) => {
  t.equal(loadWalletConfig({}).databaseApplicationName, 'phia-wallet');
  t.equal(
    loadWalletConfig({ DATABASE_APPLICATION_NAME: 'phia-wallet-chaos' }).databaseApplicationName,
    'phia-wallet-chaos',
  );
  t.throws(() => loadWalletConfig({ DATABASE_APPLICATION_NAME: 'x'.repeat(64) }), /DATABASE_APPLICATION_NAME/);
});

t.test('the wallet link: mutual TLS from the three files; production needs it beyond loopback', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'phia-wallet-link-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = spawnSync('sh', [fileURLToPath(new URL('../../ops/wallet-tls/dev-ca.sh', import.meta.url)), dir]);
  t.equal(run.status, 0, 'dev CA made');
  const tls = {
    WALLET_TLS_CA_FILE: join(dir, 'ca.pem'),
    WALLET_TLS_CERT_FILE: join(dir, 'wallet.pem'),
    WALLET_TLS_KEY_FILE: join(dir, 'wallet.key'),
  };
  t.ok(loadWalletConfig(tls).tls, 'TLS with the three files');
  t.equal(loadWalletConfig({}).tls, undefined, 'plaintext without them');
  t.throws(
    () => loadWalletConfig({ WALLET_TLS_CA_FILE: '/ca.pem', WALLET_TLS_KEY_FILE: '/key.pem' }),
    /WALLET_TLS_CERT_FILE must be set too/,
  );
  t.doesNotThrow(() => loadWalletConfig({ WALLET_TLS_CERT_FILE: '' }), 'empty counts as unset');

  const prod = { NODE_ENV: 'production', DATABASE_URL: 'postgres://db/phia' };
  t.throws(() => loadWalletConfig({ ...prod, WALLET_HOST: '0.0.0.0' }), /WALLET_HOST=0\.0\.0\.0 is reachable beyond/);
  t.doesNotThrow(() => loadWalletConfig({ ...prod, WALLET_HOST: '0.0.0.0', ...tls }), 'with TLS');
  t.doesNotThrow(() => loadWalletConfig(prod), 'loopback (the default) needs none');
});

t.test('tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; a bad one is refused', async (t) => {
  t.same(loadWalletConfig({}).tracing, { endpoint: undefined, serviceName: 'phia-wallet' });
  t.same(loadWalletConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example' }).tracing, {
    endpoint: 'https://otel.example',
    serviceName: 'phia-wallet',
  });
  t.throws(
    () => loadWalletConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' }),
    /OTEL_EXPORTER_OTLP_ENDPOINT must be an http:\/\/ or https:\/\/ URL/,
  );
});
