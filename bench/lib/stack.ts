/**
 * The real stack on 127.0.0.1: a redis-server of our own (no persistence), the wallet
 * (`node wallet-service/dist/server.js`) on PostgreSQL in a schema of its own (bench_<random>,
 * dropped afterwards), and the gateway (`node gateway/dist/server.js`) in signature mode with a
 * generated key. Everything is stopped by `stop()` or, failing that, by the exit handlers of proc.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { walletTestClient, WalletCallError, type WalletTestClient } from '../../test/helpers/wallet-client.js';
import type { Player } from './phia.js';
import { CURRENCY } from './phia.js';
import { freePort, onCleanup, spawnNode, spawnProcess, waitUntil, type Child } from './proc.js';

export const ROOT = new URL('../..', import.meta.url).pathname;
/** The V8 flags the gateway runs with in production (scripts/start.js GATEWAY_NODE_ARGS, gateway/Dockerfile NODE_OPTIONS). */
export const GATEWAY_NODE_ARGS = ['--max-semi-space-size=16'];
const WALLET_ENTRY = join(ROOT, 'wallet-service', 'dist', 'server.js');
const GATEWAY_ENTRY = join(ROOT, 'gateway', 'dist', 'server.js');

export interface StackOptions {
  databaseUrl: string;
  deadlineMs: number;
  logLevel: string;
  logDir: string;
  /** Extra node flags for gateway and wallet (e.g. --cpu-prof). */
  nodeArgs: string[];
  gatewayEntry?: string | undefined;
  walletEntry?: string | undefined;
  gatewayNodeArgs?: string[];
  walletNodeArgs?: string[];
  /** A command the gateway runs under (e.g. valgrind and its flags), before node and its flags. */
  gatewayWrapper?: string[];
  /** Extra environment of the gateway. */
  gatewayEnv?: NodeJS.ProcessEnv;
}

export interface Stack {
  schema: string;
  key: string;
  gatewayUrl: string;
  walletAddress: string;
  redisUrl: string;
  redis: Redis;
  wallet: WalletTestClient;
  gateway: Child;
  walletProcess: Child;
  redisProcess: Child;
  /** Stops gateway, wallet and redis in that order (graceful, then killed). */
  stop(): Promise<void>;
  dropSchema(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const walletEntry = options.walletEntry ?? WALLET_ENTRY;
  const gatewayEntry = options.gatewayEntry ?? GATEWAY_ENTRY;
  for (const entry of [walletEntry, gatewayEntry]) {
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` (npm run bench does)`);
  }
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const key = randomBytes(32).toString('hex');
  const [redisPort, walletPort, gatewayPort] = [await freePort(), await freePort(), await freePort()];

  let dropped = false;
  const dropSchema = async () => {
    if (dropped) return;
    dropped = true;
    const client = new pg.Client({ connectionString: options.databaseUrl });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await client.end();
    }
  };
  onCleanup(dropSchema);

  const redisProcess = spawnProcess(
    'redis',
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
    { logFile: join(options.logDir, 'redis.log') },
  );
  onCleanup(async () => void (await redisProcess.stop(5000)));
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  // Reconnects every 50 ms until redis-server listens; a ping waits for the connection meanwhile.
  const redis = new Redis(redisUrl, { retryStrategy: () => 50, maxRetriesPerRequest: null });
  redis.on('error', () => {});
  await waitUntil(
    'redis',
    async () => (await Promise.race([redis.ping(), sleep(1000).then(() => 'no answer')])) === 'PONG',
    10_000,
    redisProcess,
  );
  onCleanup(async () => redis.disconnect());

  const walletProcess = spawnNode('wallet', walletEntry, [], {
    nodeArgs: [...options.nodeArgs, ...(options.walletNodeArgs ?? [])],
    logFile: join(options.logDir, 'wallet.log'),
    env: {
      ...process.env,
      WALLET_HOST: '127.0.0.1',
      WALLET_PORT: String(walletPort),
      WALLET_METRICS_PORT: '0',
      DATABASE_URL: options.databaseUrl,
      DATABASE_SCHEMA: schema,
      LOG_LEVEL: options.logLevel,
      NODE_ENV: '',
    },
  });
  onCleanup(async () => void (await walletProcess.stop(15_000)));
  const walletAddress = `127.0.0.1:${walletPort}`;
  const wallet = walletTestClient(walletAddress);
  onCleanup(async () => wallet.close());
  // Ready once the ledger answers (before its database is open, the service is not even registered).
  await waitUntil(
    'wallet',
    async () => {
      try {
        await wallet.GetBalance({ user_id: 'bench-nobody', currency: CURRENCY }, { deadlineMs: 1000 });
        return true;
      } catch (error) {
        return error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND';
      }
    },
    60_000,
    walletProcess,
  );

  // The production gateway's V8 flags (scripts/start.js, gateway/Dockerfile), then the experiment's.
  const gatewayNodeArgs = [...options.nodeArgs, ...GATEWAY_NODE_ARGS, ...(options.gatewayNodeArgs ?? [])];
  const [wrapper, ...wrapperArgs] = options.gatewayWrapper ?? [];
  const gatewayOptions = {
    nodeArgs: gatewayNodeArgs,
    logFile: join(options.logDir, 'gateway.log'),
    env: {
      ...process.env,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(gatewayPort),
      WALLET_ADDR: walletAddress,
      REDIS_URL: redisUrl,
      PHIA_AUTH_MODE: 'signature',
      PHIA_SIGNING_KEYS: key,
      PHIA_ALLOWED_IPS: '',
      WALLET_DEADLINE_MS: String(options.deadlineMs),
      LOG_LEVEL: options.logLevel,
      NODE_ENV: '',
      ...options.gatewayEnv,
    },
  };
  const gateway =
    wrapper === undefined
      ? spawnNode('gateway', gatewayEntry, [], gatewayOptions)
      : spawnProcess(
          'gateway',
          wrapper,
          [...wrapperArgs, process.execPath, ...gatewayNodeArgs, gatewayEntry],
          gatewayOptions,
        );
  onCleanup(async () => void (await gateway.stop(15_000)));
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  await waitUntil(
    'gateway',
    async () => {
      const response = await fetch(`${gatewayUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
      const body = (await response.json()) as { status?: string };
      return response.status === 200 && body.status === 'ready';
    },
    // Under a wrapper such as valgrind the gateway starts many times slower.
    wrapper === undefined ? 30_000 : 300_000,
    gateway,
  );

  return {
    schema,
    key,
    gatewayUrl,
    walletAddress,
    redisUrl,
    redis,
    wallet,
    gateway,
    walletProcess,
    redisProcess,
    async stop() {
      await gateway.stop(15_000);
      wallet.close();
      await walletProcess.stop(15_000);
      redis.disconnect();
      await redisProcess.stop(5000);
    },
    dropSchema,
  };
}

/** Funds `count` players generously over gRPC and opens a session for each (8 calls in flight). */
export async function seedPlayers(wallet: WalletTestClient, tag: string, count: number): Promise<Player[]> {
  const players: Player[] = new Array<Player>(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const user = `${tag}-p${i}`;
      await wallet.Deposit({ tx_id: `${tag}-dep${i}`, user_id: user, currency: CURRENCY, amount: '1000000000.00' });
      const session = await wallet.OpenSession({ user_id: user, currency: CURRENCY, ttl_seconds: 3600 });
      players[i] = { user_id: user, session_id: session.session_id ?? '', game_session_id: `${tag}-gs${i}` };
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return players;
}

/** Unlabelled values of the gateway's Prometheus metrics whose names end with one of `suffixes`. */
export async function gatewayMetrics(gatewayUrl: string, suffixes: readonly string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${gatewayUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const values: Record<string, number> = {};
  for (const row of text.split('\n')) {
    const [name, value] = row.split(/\s+/);
    const suffix = name === undefined ? undefined : suffixes.find((candidate) => name.endsWith(candidate));
    if (suffix !== undefined) values[suffix] = Number(value);
  }
  return values;
}

/** The sum of every labelled row of one of the gateway's metrics; undefined when it has no row. */
export async function metricTotal(gatewayUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${gatewayUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const rows = [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'gm'))];
  return rows.length === 0 ? undefined : rows.reduce((sum, row) => sum + Number(row[1]), 0);
}

/**
 * Waits (at most `timeoutMs`) until the gateway has ended no request for 100 ms (phia_requests_total
 * unchanged). A load run stops with requests in flight, which the gateway still serves: left running
 * they would compete with the next run, and fill the wallet client's bound beside its connections
 * (503s in the one-player path).
 */
export async function gatewayQuiet(gatewayUrl: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const ended = async () => (await metricTotal(gatewayUrl, 'phia_requests_total')) ?? 0;
  let before = await ended();
  while (Date.now() < until) {
    await sleep(100);
    const now = await ended();
    if (now === before) return;
    before = now;
  }
}

/** The gateway's pending void count: the Redis outbox and its own memory; NaN when absent. */
export async function pendingVoids(gatewayUrl: string): Promise<number> {
  return (await metricTotal(gatewayUrl, 'phia_pending_voids')) ?? NaN;
}

/** The gateway's own view of its memory (prom-client default metrics), in MB. */
export async function gatewayMemory(gatewayUrl: string): Promise<Record<string, number>> {
  // prom-client's default metrics, under the gateway's prefix (phia_gateway_).
  const names = [
    'process_resident_memory_bytes',
    'nodejs_heap_size_total_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_external_memory_bytes',
  ] as const;
  const values = await gatewayMetrics(gatewayUrl, names);
  const mb = (name: string) => Math.round((values[name] ?? NaN) / 1024 / 102.4) / 10;
  return { rss: mb(names[0]), heapTotal: mb(names[1]), heapUsed: mb(names[2]), external: mb(names[3]) };
}
