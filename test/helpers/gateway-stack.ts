/**
 * The real stack for the gateway's HTTP tests: the real wallet service on a PostgreSQL schema of its
 * own, real Redis under a random key prefix, and the gateway app in front (driven with inject()).
 */
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildAppOptions } from '../../gateway/src/app.js';
import type { Env, GatewayConfig } from '../../gateway/src/config.js';
import { createRedisClient, waitForRedis, type RedisClient } from '../../gateway/src/redis.js';
import { startTcpProxy } from '../../gateway/src/test-helpers/tcp-proxy.js';
import { createTestSchema, type TestSchema } from './postgres.js';
import { walletTestClient, type WalletTestClient } from './wallet-client.js';
import { startWalletServer, type WalletServerOptions } from '../../wallet-service/src/index.js';
import {
  post,
  quietLogger,
  randomPrefix,
  testConfig,
  uid,
  type PostOptions,
} from '../../gateway/src/test-helpers/index.js';

export { moneyBody } from '../../gateway/src/test-helpers/index.js';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

type WalletServer = Awaited<ReturnType<typeof startWalletServer>>;

export interface StackOptions {
  label: string;
  /** Extra gateway environment (WALLET_DEADLINE_MS, PHIA_AUTH_MODE, ...). */
  env?: Env;
  /** Use Redis (default true); false: in-process store and queue. */
  redis?: boolean;
  app?: Partial<BuildAppOptions>;
  /** Extra wallet server options (a span exporter, ...). */
  wallet?: Partial<WalletServerOptions>;
}

export interface Stack {
  schema: TestSchema;
  wallet: WalletServer;
  /** The wallet's port: a restarted wallet listens on the same one. */
  walletPort: number;
  app: FastifyInstance;
  config: GatewayConfig;
  keyPrefix: string;
  /** A client of the wallet for setting up accounts and checking the ledger. */
  admin: WalletTestClient;
  /** A Redis client of the test's own, for inspecting keys. */
  redis: RedisClient | undefined;
  /** Builds another gateway app over the same wallet, Redis and prefix (a restart, or a second instance). */
  newApp(extra?: Partial<BuildAppOptions>, env?: Env): Promise<FastifyInstance>;
  /** Stops the wallet (forceClose: running calls are cut). */
  stopWallet(): Promise<void>;
  /** Starts the wallet again on the same port and schema. */
  startWallet(): Promise<void>;
  /** Creates an account with `amount` by a deposit. */
  fund(userId: string, currency: string, amount: string): Promise<void>;
  /** The balance straight from the wallet. */
  balance(userId: string, currency: string): Promise<string>;
  post(path: string, body: unknown, options?: PostOptions): ReturnType<typeof post>;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const schema = await createTestSchema(options.label);
  const startWallet = (port = 0) =>
    startWalletServer({
      host: '127.0.0.1',
      port,
      databaseUrl: schema.databaseUrl,
      schema: schema.schema,
      ...options.wallet,
    });
  let wallet = await startWallet();
  const walletPort = wallet.port;
  const useRedis = options.redis !== false;
  const keyPrefix = randomPrefix();
  const redis = useRedis ? createRedisClient(REDIS_URL) : undefined;
  if (redis) await waitForRedis(redis);
  const envFor = (env?: Env) =>
    testConfig({
      WALLET_ADDR: `127.0.0.1:${walletPort}`,
      ...(useRedis ? { REDIS_URL } : {}),
      ...options.env,
      ...env,
    });
  const config = envFor();
  const apps: FastifyInstance[] = [];
  const newApp = async (extra: Partial<BuildAppOptions> = {}, env?: Env) => {
    const app = await buildApp({
      config: env === undefined ? config : envFor(env),
      keyPrefix,
      logger: quietLogger(),
      defaultMetrics: false,
      voidQueue: { baseDelayMs: 50, maxDelayMs: 500, pollIntervalMs: 50, leaseMs: 2000 },
      ...options.app,
      ...extra,
    });
    apps.push(app);
    await app.ready();
    return app;
  };
  const app = await newApp();
  // Let the app's own Redis connection come up, so the first requests take the fast path.
  if (useRedis) await waitForAppRedis(app);
  const admin = walletTestClient(wallet.address);
  let walletRunning = true;

  const stack: Stack = {
    schema,
    get wallet() {
      return wallet;
    },
    walletPort,
    app,
    config,
    keyPrefix,
    admin,
    redis,
    newApp,
    async stopWallet() {
      if (!walletRunning) return;
      walletRunning = false;
      await wallet.forceClose();
    },
    async startWallet() {
      if (walletRunning) return;
      wallet = await startWallet(walletPort);
      walletRunning = true;
    },
    async fund(userId, currency, amount) {
      await admin.Deposit({ tx_id: uid('dep'), user_id: userId, currency, amount });
    },
    async balance(userId, currency) {
      const reply = await admin.GetBalance({ user_id: userId, currency });
      return reply.balance as string;
    },
    post: (path, body, postOptions) => post(app, path, body, postOptions),
    async close() {
      for (const each of apps) await each.close();
      admin.close();
      if (walletRunning) await wallet.close();
      if (redis) {
        const keys = await redis.keys(`${keyPrefix}*`);
        if (keys.length > 0) await redis.del(...keys);
        await redis.quit();
      }
      await schema.drop();
    },
  };
  return stack;
}

/** Waits until the app's idempotency store answers (its Redis connection is up). */
export async function waitForAppRedis(app: FastifyInstance, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await app.store.ping()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the app did not reach Redis');
}

/** Polls `check` until true or the timeout. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

/** Holds the player's account row lock from a separate connection: the wallet's calls for it wait. */
export async function holdAccount(
  stack: Pick<Stack, 'schema'>,
  user: string,
  currency = 'USD',
): Promise<{ release(): Promise<void> }> {
  const client = await stack.schema.pool.connect();
  await client.query('BEGIN');
  await client.query(
    `SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2 FOR UPDATE`,
    [user, currency],
  );
  return {
    async release() {
      await client.query('ROLLBACK');
      client.release();
    },
  };
}

/** Another gateway app whose Redis connection goes through a proxy the test can stop, pause or resume. */
export async function proxiedRedisApp(stack: Pick<Stack, 'newApp'>, t: { teardown: (fn: () => unknown) => void }) {
  const target = new URL(REDIS_URL);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  t.teardown(() => proxy.close());
  // The same database as the test's own client (TEST_REDIS_URL may name one).
  const app = await stack.newApp({}, { REDIS_URL: `${proxy.url('redis')}${target.pathname}` });
  await waitForAppRedis(app);
  return { proxy, app };
}
