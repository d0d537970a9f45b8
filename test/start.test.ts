/**
 * `npm start` as a user runs it: on the embedded defaults (no DATABASE_URL, no REDIS_URL) it starts
 * the wallet and the gateway, prints where they listen and the dev key it stored, answers a bet signed
 * with `phia-admin sign`, and Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops
 * the gateway, then the wallet, with exit code 0. Also: a service that dies makes it exit non-zero,
 * the dev key is created once with mode 0600 and reused, and the health probe's exit codes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, WALLET_PROTO_PATH } from '@phia/proto';
import t, { type Test } from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The installed command (admin/bin), as `npx phia-admin` runs it. */
const ADMIN = join(ROOT, 'admin/bin/phia-admin.js');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// The wallet's PGlite takes a while to start on a busy machine.
t.setTimeout(300_000);

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

/** The environment of a user with nothing configured but the ports (free ones, so tests never clash). */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'PHIA_SIGNING_KEYS', 'NODE_ENV', 'WALLET_ADDR', 'PHIA_AUTH_MODE']) {
    delete env[name];
  }
  return env;
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'phia-start-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Wallet = grpc.Client &
  Record<string, (request: object, callback: (error: Error | null, reply: unknown) => void) => void>;

function walletClient(address: string): Wallet {
  const definition = protoLoader.loadSync(WALLET_PROTO_PATH, { ...PROTO_LOADER_OPTIONS });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    wallet: { v1: { Wallet: new (address: string, credentials: grpc.ChannelCredentials) => Wallet } };
  };
  return new loaded.wallet.v1.Wallet(address, grpc.credentials.createInsecure());
}

function call(client: Wallet, method: string, request: object): Promise<Record<string, string>> {
  return new Promise((done, fail) => {
    const fn = client[method];
    if (!fn) return fail(new Error(`no method ${method}`));
    fn.call(client, request, (error, reply) => (error ? fail(error) : done(reply as Record<string, string>)));
  });
}

t.test('npm start on the embedded defaults answers a signed bet; Ctrl-C stops both in order', async (t) => {
  const dataDir = tempDir(t);
  const [gatewayPort, walletPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const env = userEnv({
    DATA_DIR: dataDir,
    GATEWAY_PORT: String(gatewayPort),
    WALLET_PORT: String(walletPort),
    WALLET_METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'warn',
  });
  // detached: a process group of its own, like a terminal's foreground job, so that SIGINT can go to
  // the whole group (npm, sh and start.js) as Ctrl-C does.
  const child = spawn(NPM, ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // 'close': npm, start.js and both services share these pipes, so it fires once all of them ended.
  const exited = new Promise<string>((done) => child.once('close', (code, signal) => done(signal ?? String(code))));
  let exitCode: string | undefined;
  void exited.then((code) => (exitCode = code));
  t.teardown(() => {
    if (exitCode === undefined && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  });

  const deadline = Date.now() + 240_000;
  while (!output.includes('running; Ctrl-C stops both')) {
    if (exitCode !== undefined) break;
    if (Date.now() > deadline) break;
    await new Promise((done) => setTimeout(done, 250));
  }
  t.match(output, /running; Ctrl-C stops both/, 'started', { output: output.slice(-4000) });
  if (!output.includes('running; Ctrl-C stops both')) return;

  t.match(output, /ledger: PGlite in .*wallet-pglite \(default: DATABASE_URL is unset\)/, 'prints the ledger default');
  t.match(output, /idempotency store and void queue: in-process \(default: REDIS_URL is unset/, 'prints the store');
  t.match(output, new RegExp(`wallet ready: gRPC 127\\.0\\.0\\.1:${walletPort}`), 'prints where the wallet listens');
  t.match(
    output,
    new RegExp(`gateway ready: http://127\\.0\\.0\\.1:${gatewayPort}`),
    'prints where the gateway listens',
  );
  const key = /PHIA_SIGNING_KEYS=([0-9a-f]{64})/.exec(output)?.[1];
  t.ok(key, 'prints the generated dev key');
  const keyFile = join(dataDir, 'dev-signing-key');
  t.equal(readFileSync(keyFile, 'utf8').trim(), key, 'stored in DATA_DIR/dev-signing-key');
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'readable by its owner only');

  const wallet = walletClient(`127.0.0.1:${walletPort}`);
  t.teardown(() => wallet.close());
  await call(wallet, 'Deposit', { tx_id: 'start-dep-1', user_id: 'u-start', currency: 'USD', amount: '100.00' });

  const body = JSON.stringify({
    user_id: 'u-start',
    currency: 'USD',
    tx_id: 'start-bet-1',
    round_id: 'r-1',
    game_session_id: 'g-1',
    amount: '2.50',
  });
  const signed = spawnSync(process.execPath, [ADMIN, 'sign', body, 'bet'], { cwd: ROOT, env, encoding: 'utf8' });
  t.equal(signed.status, 0, 'phia-admin sign finds the dev key');
  const signature = /X-REQUEST-SIGN: ([0-9a-f]{64})/.exec(signed.stdout)?.[1] ?? '';
  t.equal(
    signature,
    createHmac('sha256', key ?? '')
      .update(body)
      .digest('hex'),
    'HMAC-SHA256 of the body',
  );
  t.match(signed.stdout, `curl -sS -X POST 'http://127.0.0.1:${gatewayPort}/phia/bet'`, 'prints the curl command');

  const url = `http://127.0.0.1:${gatewayPort}/phia/bet`;
  const post = (sign: string) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-sign': sign }, body });
  const first = await post(signature);
  t.equal(first.status, 200, 'signed bet answered 200');
  t.same(await first.json(), { balance: '97.50', currency: 'USD', tx_id: 'start-bet-1' });
  const again = await post(signature);
  t.same(await again.json(), { balance: '97.50', currency: 'USD', tx_id: 'start-bet-1' }, 'duplicate replays');
  const unsigned = await post('0'.repeat(64));
  t.equal(unsigned.status, 401, 'a wrong signature is refused');

  if (child.pid !== undefined) process.kill(-child.pid, 'SIGINT'); // Ctrl-C
  const code = await Promise.race([exited, new Promise((done) => setTimeout(() => done('timeout'), 60_000))]);
  // npm itself ends by re-raising SIGINT (a shell shows ^C); start.js ends with 0.
  t.ok(code === '0' || code === 'SIGINT', `npm start ends after Ctrl-C (${String(code)})`, {
    output: output.slice(-3000),
  });
  t.match(output, /\[start\] wallet stopped \(code 0\)/, 'the wallet stopped cleanly');
  t.notMatch(output, /exited unexpectedly|did not stop/, 'no service died or hung');
  const gatewayStopped = output.indexOf('[start] gateway stopped');
  const walletStopped = output.indexOf('[start] wallet stopped');
  t.ok(gatewayStopped > 0 && walletStopped > gatewayStopped, 'gateway stopped first, then the wallet');
  t.notMatch(output, /forced stop/, 'the double Ctrl-C from terminal and npm does not force the stop');
});

t.test('start.js exits non-zero when a service dies', async (t) => {
  const dataDir = tempDir(t);
  // An invalid setting makes the wallet exit at once (EX_CONFIG 78): start.js must not carry on.
  const env = userEnv({ DATA_DIR: dataDir, WALLET_PORT: 'not-a-port', GATEWAY_PORT: String(await freePort()) });
  const result = spawnSync(process.execPath, ['scripts/start.js'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.not(result.status, 0, 'non-zero exit');
  t.match(result.stderr, /wallet exited unexpectedly/);
  t.notMatch(result.stdout, /starting gateway/, 'the gateway was never started');
});

t.test('the dev key is created once, mode 0600, and reused; production never gets one', async (t) => {
  const dataDir = tempDir(t);
  const script = `import('./scripts/start.js').then((m) => console.log(JSON.stringify(m.loadOrCreateDevKey(process.argv[1]))))`;
  const run = () =>
    JSON.parse(spawnSync(process.execPath, ['-e', script, dataDir], { cwd: ROOT, encoding: 'utf8' }).stdout) as {
      key: string;
      created: boolean;
    };
  const first = run();
  const second = run();
  t.equal(first.created, true);
  t.equal(second.created, false);
  t.equal(second.key, first.key, 'reused');
  t.match(first.key, /^[0-9a-f]{64}$/);
  t.equal(statSync(join(dataDir, 'dev-signing-key')).mode & 0o777, 0o600);

  // NODE_ENV=production without keys: no dev key; the gateway itself refuses to start.
  const prodDir = tempDir(t);
  const env = { ...userEnv({ DATA_DIR: prodDir, WALLET_PORT: 'not-a-port' }), NODE_ENV: 'production' };
  const result = spawnSync(process.execPath, ['scripts/start.js'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.notMatch(result.stdout, /PHIA_SIGNING_KEYS=/, 'no key printed in production');
  t.throws(() => statSync(join(prodDir, 'dev-signing-key')), 'no key file in production');
});

t.test('phia-admin sign: first key of PHIA_SIGNING_KEYS, exact bytes, shell-safe curl', async (t) => {
  const body = `{"action":"balance","user_id":"o'neil ü","currency":"USD"}`;
  const env = { ...process.env, PHIA_SIGNING_KEYS: ' k1 , k2', GATEWAY_URL: 'http://gw.example:9000/' };
  const sigOnly = spawnSync(process.execPath, [ADMIN, 'sign', body, '--sig-only'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  });
  t.equal(sigOnly.stdout.trim(), createHmac('sha256', 'k1').update(body, 'utf8').digest('hex'));
  const full = spawnSync(process.execPath, [ADMIN, 'sign', body], { cwd: ROOT, env, encoding: 'utf8' });
  t.match(full.stdout, "curl -sS -X POST 'http://gw.example:9000/phia'", 'single endpoint for a body with action');
  // The quoted body, run through a shell, is byte for byte the signed body.
  const quoted = /--data-binary (.*)$/m.exec(full.stdout)?.[1] ?? '';
  const echoed = spawnSync('sh', ['-c', `printf %s ${quoted}`], { encoding: 'utf8' }).stdout;
  t.equal(echoed, body);
  const file = join(tempDir(t), 'body.json');
  writeFileSync(file, body);
  const fromFile = spawnSync(process.execPath, [ADMIN, 'sign', `@${file}`, '--sig-only'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  });
  t.equal(fromFile.stdout, sigOnly.stdout, '@file signs the same bytes');
  const bad = spawnSync(process.execPath, [ADMIN, 'sign', body, 'deposit'], { cwd: ROOT, env, encoding: 'utf8' });
  t.equal(bad.status, 2, 'unknown action refused');
  const noKey = spawnSync(process.execPath, [ADMIN, 'sign', body], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, DATA_DIR: tempDir(t) },
    encoding: 'utf8',
  });
  t.equal(noKey.status, 1, 'no key: clear error');
  t.match(noKey.stderr, /no key/);
});

t.test('healthcheck.js exit codes', async (t) => {
  const port = await freePort();
  const grpcProbe = spawnSync(process.execPath, ['scripts/healthcheck.js', 'grpc', `127.0.0.1:${port}`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  t.equal(grpcProbe.status, 1, 'grpc: nothing listening → 1');
  t.match(grpcProbe.stderr, /not healthy/);
  const httpProbe = spawnSync(
    process.execPath,
    ['scripts/healthcheck.js', 'http', `http://127.0.0.1:${port}/healthz`],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  t.equal(httpProbe.status, 1, 'http: nothing listening → 1');
  const usage = spawnSync(process.execPath, ['scripts/healthcheck.js'], { cwd: ROOT, encoding: 'utf8' });
  t.equal(usage.status, 2, 'usage');
});
