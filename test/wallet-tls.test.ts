/**
 * Mutual TLS on the wallet link, through real processes on 127.0.0.1: a production wallet refuses to
 * listen beyond loopback without its certificates; with them, only a client holding a certificate of
 * the link's CA gets in (no certificate, plaintext, or another CA's certificate: refused, and nothing
 * moves); a gateway with the link's files answers PHIA through it; the health probe speaks TLS too.
 * The certificates come from ops/wallet-tls/dev-ca.sh, the script compose runs.
 */
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { freePort, ManagedProcess } from './chaos/processes.js';
import { createTestSchema } from './helpers/postgres.js';
import { WalletCallError, waitForWallet, walletTestClient } from './helpers/wallet-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SIGNING_KEY = 'wallet-tls-test-key-0123456789abcdef';

t.setTimeout(180_000);

const dir = mkdtempSync(join(tmpdir(), 'phia-wallet-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A CA and its wallet and gateway certificates, made by the script compose runs. */
function devCa(name: string): Record<'ca' | 'walletCert' | 'walletKey' | 'gatewayCert' | 'gatewayKey', string> {
  const out = join(dir, name);
  const run = spawnSync('sh', [join(ROOT, 'ops/wallet-tls/dev-ca.sh'), out], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`dev-ca.sh failed: ${run.stderr}`);
  return {
    ca: join(out, 'ca.pem'),
    walletCert: join(out, 'wallet.pem'),
    walletKey: join(out, 'wallet.key'),
    gatewayCert: join(out, 'gateway.pem'),
    gatewayKey: join(out, 'gateway.key'),
  };
}

const link = devCa('link');
const foreign = devCa('foreign');
const schema = await createTestSchema('tls');
t.teardown(() => schema.drop());

const baseEnv = {
  PATH: process.env.PATH,
  NODE_ENV: 'production',
  DATABASE_URL: schema.databaseUrl,
  DATABASE_SCHEMA: schema.schema,
  WALLET_METRICS_PORT: '0',
  LOG_LEVEL: 'warn',
};
const walletTlsEnv = {
  WALLET_TLS_CA_FILE: link.ca,
  WALLET_TLS_CERT_FILE: link.walletCert,
  WALLET_TLS_KEY_FILE: link.walletKey,
};

function tlsCredentials(ca: string, cert?: string, key?: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    readFileSync(ca),
    key === undefined ? null : readFileSync(key),
    cert === undefined ? null : readFileSync(cert),
  );
}

t.test('a production wallet listening beyond loopback without TLS files refuses to start', async (t) => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'wallet-service/src/server.ts')], {
    env: { ...baseEnv, WALLET_HOST: '0.0.0.0', WALLET_PORT: String(await freePort()) },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(run.status, 78, 'exit code EX_CONFIG');
  t.match(run.stderr, /WALLET_HOST=0\.0\.0\.0 is reachable beyond this machine/);
});

const walletPort = await freePort();
const walletAddress = `127.0.0.1:${walletPort}`;
const wallet = new ManagedProcess({
  name: 'wallet',
  command: process.execPath,
  args: ['--import', 'tsx', join(ROOT, 'wallet-service/src/server.ts')],
  env: { ...baseEnv, ...walletTlsEnv, WALLET_HOST: '127.0.0.1', WALLET_PORT: String(walletPort) },
  logFile: join(dir, 'wallet.log'),
});
t.teardown(() => wallet.kill('SIGTERM'));
wallet.start();

const trusted = walletTestClient(walletAddress, tlsCredentials(link.ca, link.gatewayCert, link.gatewayKey));
t.teardown(() => trusted.close());

t.test('only a client with a certificate of the link CA gets in; the others move nothing', async (t) => {
  await waitForWallet(trusted);
  t.pass('the wallet answers a client with the gateway certificate');
  const user = `tls-${process.pid}`;
  await trusted.Deposit({ user_id: user, currency: 'USD', amount: '10.00', tx_id: `${user}-d1` });

  const intruders: Array<[string, grpc.ChannelCredentials]> = [
    ['plaintext', grpc.credentials.createInsecure()],
    ['TLS without a client certificate', tlsCredentials(link.ca)],
    ["another CA's client certificate", tlsCredentials(link.ca, foreign.gatewayCert, foreign.gatewayKey)],
  ];
  for (const [name, credentials] of intruders) {
    const client = walletTestClient(walletAddress, credentials);
    const deposit = client.Deposit(
      { user_id: user, currency: 'USD', amount: '1000000.00', tx_id: `${user}-${name}` },
      { deadlineMs: 3000 },
    );
    const refused = await deposit.then(
      () => undefined,
      (error: unknown) => error,
    );
    t.ok(refused instanceof WalletCallError && refused.grpcCode === grpc.status.UNAVAILABLE, `${name}: refused`);
    client.close();
  }
  t.equal((await trusted.GetBalance({ user_id: user, currency: 'USD' })).balance, '10.00', 'only the deposit moved');
});

t.test('a gateway with the link files answers PHIA through TLS; with a foreign certificate it cannot', async (t) => {
  const user = `tls-${process.pid}`;
  const body = JSON.stringify({ user_id: user, currency: 'USD' });
  const sign = createHmac('sha256', SIGNING_KEY).update(body).digest('hex');
  for (const [name, files, status] of [
    ['link certificate', link, 200],
    ['foreign certificate', foreign, 503],
  ] as const) {
    const port = await freePort();
    const gateway = new ManagedProcess({
      name: `gateway-${name}`,
      command: process.execPath,
      args: ['--import', 'tsx', join(ROOT, 'gateway/src/server.ts')],
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'test',
        GATEWAY_HOST: '127.0.0.1',
        GATEWAY_PORT: String(port),
        WALLET_ADDR: walletAddress,
        WALLET_DEADLINE_MS: '1000',
        PHIA_SIGNING_KEYS: SIGNING_KEY,
        WALLET_TLS_CA_FILE: link.ca,
        WALLET_TLS_CERT_FILE: files.gatewayCert,
        WALLET_TLS_KEY_FILE: files.gatewayKey,
        LOG_LEVEL: 'warn',
      },
      logFile: join(dir, `gateway-${port}.log`),
    });
    t.teardown(() => gateway.kill('SIGTERM'));
    gateway.start();
    let answer: { status: number; body: string } | undefined;
    for (const started = Date.now(); Date.now() - started < 60_000;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/phia/balance`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-sign': sign },
          body,
          signal: AbortSignal.timeout(3000),
        });
        answer = { status: res.status, body: await res.text() };
        if (res.status === status) break;
      } catch {
        // not listening yet
      }
      await new Promise((done) => setTimeout(done, 300));
    }
    t.equal(answer?.status, status, `${name}: ${answer?.body}`);
    if (status === 200) t.match(JSON.parse(answer?.body ?? '{}'), { balance: '10.00' });
    await gateway.kill('SIGTERM');
  }
});

t.test('the health probe speaks the link TLS when its files are set', async (t) => {
  const probe = (env: Record<string, string>) =>
    spawnSync(process.execPath, [join(ROOT, 'scripts/healthcheck.js'), 'grpc', walletAddress], {
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });
  const withTls = probe({
    WALLET_TLS_CA_FILE: link.ca,
    WALLET_TLS_CERT_FILE: link.gatewayCert,
    WALLET_TLS_KEY_FILE: link.gatewayKey,
  });
  t.equal(withTls.status, 0, `with the gateway's files: healthy ${withTls.stderr}`);
  // The wallet's own health check (Dockerfile, compose) presents the wallet's certificate.
  const own = probe(walletTlsEnv);
  t.equal(own.status, 0, `with the wallet's files: healthy ${own.stderr}`);
  const plaintext = probe({});
  t.equal(plaintext.status, 1, 'plaintext: refused');
  t.match(plaintext.stderr, /not healthy/);
});
