#!/usr/bin/env node
/**
 * `npm start`: runs the wallet and the gateway together, as a developer or a small single-host
 * deployment would (`npm run build` runs first, through the prestart script).
 *
 * - Every environment variable is passed through to both services (contract section 8). Unset
 *   DATABASE_URL: the wallet keeps its ledger in PGlite under DATA_DIR (default ./data). Unset
 *   REDIS_URL: the gateway uses its in-process idempotency store (one gateway only).
 * - Outside production, with no PHIA_SIGNING_KEYS, a dev signing key is generated once, kept in
 *   DATA_DIR/dev-signing-key (mode 0600), reused on every start, passed to the gateway and printed.
 * - The wallet starts first; the gateway starts once the wallet's gRPC health check says SERVING.
 * - Ctrl-C or SIGTERM stops the gateway first (it drains its requests and voids), then the wallet.
 *   SIGHUP is passed to the gateway (it reloads its TLS certificate). If either service dies on its
 *   own, the other is stopped and this script exits non-zero.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkGrpcHealth, checkHttp, localGatewayUrl, localWalletAddress } from './healthcheck.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WALLET_ENTRY = join(ROOT, 'wallet-service', 'dist', 'server.js');
const GATEWAY_ENTRY = join(ROOT, 'gateway', 'dist', 'server.js');
const WALLET_READY_TIMEOUT_MS = Number(process.env.START_WALLET_TIMEOUT_MS || 120_000);
const GATEWAY_READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = Number(process.env.START_STOP_TIMEOUT_MS || 20_000);
const DEV_KEY_FILE = 'dev-signing-key';
/**
 * V8 flags of the gateway: a 16 MB young generation semi-space. A bet's objects live for its whole
 * wallet call; in a smaller one they survive two scavenges and are promoted, and the old generation's
 * collections cost about a quarter of the gateway's CPU per bet (BENCHMARKS.md). Kept in step with
 * gateway/Dockerfile's NODE_OPTIONS and bench/lib/stack.ts.
 */
export const GATEWAY_NODE_ARGS = ['--max-semi-space-size=16'];

const say = (line) => console.log(`[start] ${line}`);
const warn = (line) => console.error(`[start] ${line}`);
const set = (value) => value !== undefined && value.trim() !== '';

/** Hides the password of a URL such as postgres://user:secret@host/db. */
export function redactUrl(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** Reads DATA_DIR/dev-signing-key, or creates it (0600) with a new random key. Returns { key, file, created }. */
export function loadOrCreateDevKey(dataDir) {
  const file = join(dataDir, DEV_KEY_FILE);
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    if (key !== '') return { key, file, created: false };
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32).toString('hex');
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // also when the file existed empty with other permissions
  return { key, file, created: true };
}

function main() {
  for (const [name, entry] of [
    ['wallet', WALLET_ENTRY],
    ['gateway', GATEWAY_ENTRY],
  ]) {
    if (!existsSync(entry)) {
      warn(
        `${name} is not built (${relative(process.cwd(), entry)} missing): run \`npm run build\` or use \`npm start\``,
      );
      process.exit(1);
    }
  }

  const env = { ...process.env };
  const production = env.NODE_ENV === 'production';
  const defaults = [];
  // DATA_DIR is made absolute so that both services and the key file agree whatever their cwd.
  if (!set(env.DATA_DIR)) defaults.push('DATA_DIR=./data');
  const dataDir = resolve(process.cwd(), set(env.DATA_DIR) ? env.DATA_DIR : './data');
  env.DATA_DIR = dataDir;

  const walletPort = set(env.WALLET_PORT) ? env.WALLET_PORT : '50051';
  const walletHost = set(env.WALLET_HOST) ? env.WALLET_HOST : '0.0.0.0';
  if (!set(env.WALLET_ADDR)) {
    // The gateway reaches the wallet we start, on whatever address and port it was given.
    env.WALLET_ADDR = localWalletAddress(env);
    if (walletPort !== '50051') say(`WALLET_ADDR set to ${env.WALLET_ADDR} to match WALLET_PORT`);
  }
  const walletProbeAddr = localWalletAddress(env);

  say(`mode: ${production ? 'production (NODE_ENV=production)' : 'development (NODE_ENV is not production)'}`);
  if (set(env.DATABASE_URL)) {
    say(`ledger: PostgreSQL at ${redactUrl(env.DATABASE_URL)}`);
  } else {
    say(`ledger: PGlite in ${join(dataDir, 'wallet-pglite')} (default: DATABASE_URL is unset)`);
  }
  if (set(env.REDIS_URL)) {
    say(`idempotency store and void queue: Redis at ${redactUrl(env.REDIS_URL)}`);
  } else {
    say('idempotency store and void queue: in-process (default: REDIS_URL is unset; run one gateway only)');
  }

  if (!set(env.PHIA_SIGNING_KEYS) && !production && env.PHIA_AUTH_MODE !== 'ip') {
    const dev = loadOrCreateDevKey(dataDir);
    env.PHIA_SIGNING_KEYS = dev.key;
    say(
      `signing key: dev key ${dev.created ? 'generated and stored in' : 'read from'} ${dev.file} ` +
        '(default: PHIA_SIGNING_KEYS is unset)',
    );
    say(`  PHIA_SIGNING_KEYS=${dev.key}`);
    // phia-admin sign finds the key file through DATA_DIR (and the gateway through GATEWAY_PORT) like we do.
    const prefix = ['DATA_DIR', 'GATEWAY_PORT', 'TLS_CERT_FILE']
      .filter((name) => set(process.env[name]))
      .map((name) => `${name}=${process.env[name]} `)
      .join('');
    say(`  sign a body with: ${prefix}npx phia-admin sign '{"user_id":"u1","currency":"USD"}' balance`);
  } else if (set(env.PHIA_SIGNING_KEYS)) {
    const count = env.PHIA_SIGNING_KEYS.split(',').filter((key) => key.trim() !== '').length;
    say(`signing keys: ${count} from PHIA_SIGNING_KEYS (not printed)`);
  }
  if (!set(env.PHIA_ALLOWED_IPS) && !production) {
    say('allowed IPs: 127.0.0.1, ::1 (default outside production: PHIA_ALLOWED_IPS is unset)');
  }
  if (defaults.length > 0) say(`other defaults: ${defaults.join(', ')}`);

  const children = { wallet: undefined, gateway: undefined };
  let stopping = false;

  const startChild = (name, entry, nodeArgs = []) => {
    // detached: our own process group, so a terminal's Ctrl-C reaches only this script, which then
    // stops the services in order (gateway first). The 'exit' hook below keeps them from outliving us.
    const child = spawn(process.execPath, [...nodeArgs, entry], { env, stdio: 'inherit', detached: true });
    children[name] = child;
    child.once('exit', (code, signal) => {
      children[name] = undefined;
      if (stopping) return;
      warn(`${name} exited unexpectedly (${signal ? `signal ${signal}` : `code ${code}`}): stopping`);
      void shutdown(code === 0 || code === null ? 1 : code);
    });
    return child;
  };

  const stopChild = async (name) => {
    const child = children[name];
    if (!child) return;
    const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
    child.kill('SIGTERM');
    const outcome = await Promise.race([exited, sleep(STOP_TIMEOUT_MS).then(() => undefined)]);
    if (outcome === undefined) {
      warn(`${name} did not stop within ${STOP_TIMEOUT_MS} ms: killing it`);
      child.kill('SIGKILL');
      await exited;
      return false;
    }
    say(`${name} stopped (${outcome.signal ? `signal ${outcome.signal}` : `code ${outcome.code}`})`);
    return outcome.code === 0 || outcome.signal === 'SIGTERM';
  };

  const shutdown = async (exitCode) => {
    if (stopping) return;
    stopping = true;
    const gatewayClean = await stopChild('gateway');
    const walletClean = await stopChild('wallet');
    const clean = gatewayClean !== false && walletClean !== false;
    process.exit(exitCode !== 0 ? exitCode : clean ? 0 : 1);
  };

  // Under `npm start`, Ctrl-C arrives twice at once: from the terminal and forwarded by npm. Only a
  // signal more than a second after the first forces the stop.
  let firstSignalAt = 0;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      const now = Date.now();
      if (firstSignalAt !== 0 && now - firstSignalAt < 1000) return;
      if (firstSignalAt === 0) {
        firstSignalAt = now;
        say(`${signal}: stopping the gateway, then the wallet (again to force)`);
        void shutdown(0);
      } else {
        warn('forced stop');
        for (const child of Object.values(children)) child?.kill('SIGKILL');
        process.exit(130);
      }
    });
  }
  process.on('SIGHUP', () => {
    if (children.gateway) {
      say('SIGHUP: passed to the gateway (TLS certificate reload)');
      children.gateway.kill('SIGHUP');
    }
  });
  process.on('exit', () => {
    for (const child of Object.values(children)) child?.kill('SIGKILL');
  });

  const run = async () => {
    say(`starting wallet: node ${relative(ROOT, WALLET_ENTRY)} (gRPC ${walletHost}:${walletPort})`);
    startChild('wallet', WALLET_ENTRY);
    const walletDeadline = Date.now() + WALLET_READY_TIMEOUT_MS;
    let last = '';
    for (;;) {
      if (stopping) return;
      const health = await checkGrpcHealth(walletProbeAddr, '', 1000);
      if (health.ok) break;
      last = String(health.status);
      if (Date.now() > walletDeadline) {
        warn(`wallet not ready after ${WALLET_READY_TIMEOUT_MS} ms (last answer: ${last}): stopping`);
        return shutdown(1);
      }
      await sleep(200);
    }
    const metricsPort = set(env.WALLET_METRICS_PORT) ? env.WALLET_METRICS_PORT : '9464';
    say(`wallet ready: gRPC ${walletProbeAddr} (grpc.health.v1 SERVING)`);
    if (metricsPort !== '0') say(`  wallet metrics: http://127.0.0.1:${metricsPort}/metrics`);

    const base = localGatewayUrl(env);
    const gatewayHost = set(env.GATEWAY_HOST) ? env.GATEWAY_HOST : '0.0.0.0';
    say(`starting gateway: node ${relative(ROOT, GATEWAY_ENTRY)} (wallet at ${env.WALLET_ADDR})`);
    startChild('gateway', GATEWAY_ENTRY, GATEWAY_NODE_ARGS);
    const gatewayDeadline = Date.now() + GATEWAY_READY_TIMEOUT_MS;
    for (;;) {
      if (stopping) return;
      const health = await checkHttp(`${base}/healthz`, 1000);
      if (health.ok) break;
      if (Date.now() > gatewayDeadline) {
        warn(`gateway not answering ${base}/healthz after ${GATEWAY_READY_TIMEOUT_MS} ms: stopping`);
        return shutdown(1);
      }
      await sleep(200);
    }
    say(`gateway ready: ${base} (listening on ${gatewayHost}:${new URL(base).port})`);
    say(`  PHIA endpoints: POST ${base}/phia/{balance,bet,win,refund} or POST ${base}/phia with "action"`);
    say(`  health: ${base}/healthz  readiness: ${base}/readyz  metrics: ${base}/metrics`);
    say('running; Ctrl-C stops both');
  };
  run().catch((error) => {
    warn(`start failed: ${error instanceof Error ? error.message : error}`);
    void shutdown(1);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
