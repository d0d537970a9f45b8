/**
 * The Dockerfiles' commands run as written, outside Docker (no engine on our machines):
 * scripts/docker-dryrun.js emulates every stage of each image in a folder (COPY honouring
 * .dockerignore, each RUN as written: npm ci, the tsc build, npm ci --omit=dev), then starts the
 * runtime stage's CMD with the image's ENV, waits for its HEALTHCHECK to pass and stops it with
 * SIGTERM. It needs the npm registry (npm ci, with an empty cache as in a fresh image) and, for the
 * wallet, PostgreSQL. SKIP_DOCKER_DRYRUN=1 skips it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import t from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATABASE_URL =
  process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

// Two npm ci runs and a tsc build per image: longer than the default per-file timeout.
t.setTimeout(600_000);

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

function dryrun(dockerfile: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const args = [join(ROOT, 'scripts/docker-dryrun.js'), dockerfile, '--run', '--context', ROOT];
  for (const [key, value] of Object.entries(env)) args.push('--env', `${key}=${value}`);
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('close', (code) => done({ code, output }));
  });
}

const skip = process.env.SKIP_DOCKER_DRYRUN === '1' ? 'SKIP_DOCKER_DRYRUN=1' : false;

t.test('both images build, start, pass their health check and stop on SIGTERM', { skip }, async (t) => {
  const schema = `dryrun_${process.pid}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });
  const [walletPort, metricsPort, gatewayPort, closedPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);

  // The image listens on 0.0.0.0 in production: it needs the wallet link's certificates.
  const tls = mkdtempSync(join(tmpdir(), 'phia-dryrun-tls-'));
  t.teardown(() => rmSync(tls, { recursive: true, force: true }));
  t.equal(spawnSync('sh', [join(ROOT, 'ops/wallet-tls/dev-ca.sh'), tls]).status, 0, 'dev CA made');

  // One after the other: two parallel npm ci runs are slower than two in a row on two cores.
  const wallet = await dryrun('wallet-service/Dockerfile', {
    WALLET_TLS_CA_FILE: join(tls, 'ca.pem'),
    WALLET_TLS_CERT_FILE: join(tls, 'wallet.pem'),
    WALLET_TLS_KEY_FILE: join(tls, 'wallet.key'),
    DATABASE_URL,
    DATABASE_SCHEMA: schema,
    WALLET_PORT: String(walletPort),
    WALLET_METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'warn',
  });
  // Liveness does not need the wallet: point it at a closed port.
  const gateway = await dryrun('gateway/Dockerfile', {
    // Production (the image's NODE_ENV) wants keys of 32 bytes or more.
    PHIA_SIGNING_KEYS: 'dryrun-key-0123456789abcdef0123456789',
    GATEWAY_PORT: String(gatewayPort),
    WALLET_ADDR: `127.0.0.1:${closedPort}`,
    LOG_LEVEL: 'warn',
  });
  for (const [name, result] of [
    ['wallet', wallet],
    ['gateway', gateway],
  ] as const) {
    t.equal(result.code, 0, `${name}: every step passed`, { output: result.output.slice(-6000) });
    t.match(result.output, /RUN npm ci --omit=dev --workspace/, `${name}: production install ran`);
    t.match(result.output, /HEALTHCHECK .*: healthy/, `${name}: health check passed`);
    t.match(result.output, /SIGTERM: stopped with code 0/, `${name}: clean stop`);
  }
});
