/**
 * The real stack on 127.0.0.1, as child processes: a Redis of its own, the wallet on the machine's
 * PostgreSQL in a schema of its own, and two gateways sharing both.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { WalletCallError, walletTestClient, type WalletTestClient } from '../helpers/wallet-client.js';
import { freePort, ManagedProcess, onInterrupt } from './processes.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const WALLET_ENTRY = join(ROOT, 'wallet-service/dist/server.js');
export const GATEWAY_ENTRY = join(ROOT, 'gateway/dist/server.js');

export const DATABASE_URL =
  process.env.CHAOS_DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export interface StackOptions {
  runId: string;
  /** The gateways' WALLET_DEADLINE_MS. */
  walletDeadlineMs: number;
  gateways: number;
  /** aof: Redis keeps its data over a restart (appendonly, as deployed); none: a restart loses it. */
  redisPersistence: 'aof' | 'none';
  logDir?: string;
  /** Where gateway `index` reaches the wallet, when not directly (e.g. through a relay the test can cut). */
  gatewayWalletAddr?: (index: number) => string | undefined;
}

export class ChaosStack {
  readonly runId: string;
  readonly schema: string;
  /** application_name of the chaos wallet's connections: the only backends pg-kill may terminate. */
  readonly walletAppName: string;
  readonly signingKey = randomBytes(32).toString('hex');
  readonly logDir: string;
  readonly pool: pg.Pool;
  redisPort = 0;
  walletPort = 0;
  gatewayPorts: number[] = [];
  redis!: ManagedProcess;
  wallet!: ManagedProcess;
  gateways: ManagedProcess[] = [];
  /** Gateways the harness believes are up (requests avoid the others). */
  readonly gatewayUp: boolean[] = [];
  readonly #options: StackOptions;

  constructor(options: StackOptions) {
    this.#options = options;
    this.runId = options.runId;
    this.schema = `chaos_${options.runId}`;
    this.walletAppName = `phia-wallet-chaos-${options.runId}`;
    this.logDir = options.logDir ?? join(tmpdir(), `phia-chaos-${options.runId}`);
    mkdirSync(this.logDir, { recursive: true });
    this.pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6, application_name: 'phia-chaos-harness' });
    this.pool.on('error', () => {});
    // Interrupted (Ctrl-C): the children are killed by the signal handler; the schema goes too.
    this.#forgetInterrupt = onInterrupt(() => this.pool.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`));
  }

  readonly #forgetInterrupt: () => void;

  get redisPersistence(): 'aof' | 'none' {
    return this.#options.redisPersistence;
  }

  get walletAddress(): string {
    return `127.0.0.1:${this.walletPort}`;
  }

  gatewayUrl(index: number): string {
    return `http://127.0.0.1:${this.gatewayPorts[index]}`;
  }

  async start(): Promise<void> {
    for (const entry of [WALLET_ENTRY, GATEWAY_ENTRY]) {
      if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
    }
    this.redisPort = await freePort();
    this.walletPort = await freePort();
    for (let i = 0; i < this.#options.gateways; i++) this.gatewayPorts.push(await freePort());

    const redisDir = join(this.logDir, 'redis-data');
    mkdirSync(redisDir, { recursive: true });
    this.redis = new ManagedProcess({
      name: 'redis',
      command: 'redis-server',
      args: [
        '--port',
        String(this.redisPort),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--dir',
        redisDir,
        // aof: as deployed (docker-compose.yml): the void queue survives a restart. none: a restart loses
        // everything, pending voids included (see docs/guarantees.md for what that costs).
        ...(this.#options.redisPersistence === 'aof'
          ? ['--appendonly', 'yes', '--appendfsync', 'everysec']
          : ['--appendonly', 'no']),
      ],
      env: { PATH: process.env.PATH },
      logFile: join(this.logDir, 'redis.log'),
    });
    this.wallet = new ManagedProcess({
      name: 'wallet',
      command: process.execPath,
      args: [WALLET_ENTRY],
      env: {
        PATH: process.env.PATH,
        WALLET_HOST: '127.0.0.1',
        WALLET_PORT: String(this.walletPort),
        DATABASE_URL,
        DATABASE_SCHEMA: this.schema,
        DATABASE_APPLICATION_NAME: this.walletAppName,
        WALLET_METRICS_PORT: '0',
        LOG_LEVEL: process.env.CHAOS_LOG_LEVEL || 'warn',
      },
      logFile: join(this.logDir, 'wallet.log'),
    });
    this.gateways = this.gatewayPorts.map(
      (port, index) =>
        new ManagedProcess({
          name: `gateway-${index}`,
          command: process.execPath,
          args: [GATEWAY_ENTRY],
          env: {
            PATH: process.env.PATH,
            GATEWAY_HOST: '127.0.0.1',
            GATEWAY_PORT: String(port),
            WALLET_ADDR: this.#options.gatewayWalletAddr?.(index) ?? `127.0.0.1:${this.walletPort}`,
            REDIS_URL: `redis://127.0.0.1:${this.redisPort}`,
            PHIA_AUTH_MODE: 'signature',
            PHIA_SIGNING_KEYS: this.signingKey,
            WALLET_DEADLINE_MS: String(this.#options.walletDeadlineMs),
            LOG_LEVEL: process.env.CHAOS_LOG_LEVEL || 'warn',
          },
          logFile: join(this.logDir, `gateway-${index}.log`),
        }),
    );
    await this.startRedis();
    await this.startWallet();
    await Promise.all(this.gateways.map((_, index) => this.startGateway(index)));
  }

  /** Every process the stack runs. */
  get processes(): ManagedProcess[] {
    return [this.redis, this.wallet, ...this.gateways].filter((process) => process !== undefined);
  }

  async startRedis(): Promise<void> {
    this.redis.start();
    await waitFor('redis', 10_000, async () => (await this.redisCli(['PING'])).trim() === 'PONG');
  }

  async startWallet(): Promise<void> {
    this.wallet.start();
    await waitFor('wallet', 30_000, () => this.walletReady());
  }

  async startGateway(index: number): Promise<void> {
    const gateway = this.gateways[index];
    if (gateway === undefined) throw new Error(`no gateway ${index}`);
    gateway.start();
    await waitFor(`gateway-${index}`, 30_000, async () => {
      const response = await fetch(`${this.gatewayUrl(index)}/healthz`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      return response.status === 200;
    });
    this.gatewayUp[index] = true;
  }

  /** The wallet answers a real call (its database is ready): an unknown account is ACCOUNT_NOT_FOUND. */
  async walletReady(): Promise<boolean> {
    const client = walletTestClient(this.walletAddress);
    try {
      await client.GetBalance({ user_id: '__chaos_probe__', currency: 'USD' }, { deadlineMs: 1000 });
      return true;
    } catch (error) {
      return error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND';
    } finally {
      client.close();
    }
  }

  /** A fresh client of the wallet (a long-lived one may sit in reconnect backoff after a restart). */
  admin(): WalletTestClient {
    return walletTestClient(this.walletAddress);
  }

  redisCli(args: string[], timeoutMs = 2000): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        'redis-cli',
        ['-h', '127.0.0.1', '-p', String(this.redisPort), ...args],
        { timeout: timeoutMs },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      );
    });
  }

  /** Gets every process running again after a fault (or a crash). */
  async heal(): Promise<void> {
    this.redis.resume();
    if (!this.redis.running) await this.startRedis();
    await this.redisCli(['CLIENT', 'UNPAUSE']).catch(() => '');
    if (!this.wallet.running) await this.startWallet();
    for (let i = 0; i < this.gateways.length; i++) {
      if (!this.gateways[i]?.running) await this.startGateway(i);
      this.gatewayUp[i] = true;
    }
  }

  /** Kills every process; drops the schema and (unless keepLogs) removes the processes' logs. */
  async close(options: { dropSchema: boolean; keepLogs?: boolean }): Promise<void> {
    this.#forgetInterrupt();
    for (const process of this.processes) await process.close();
    if (options.keepLogs !== true) rmSync(this.logDir, { recursive: true, force: true });
    if (options.dropSchema) {
      await this.pool.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`).catch(() => undefined);
    }
    await this.pool.end().catch(() => undefined);
  }
}

/** Polls `probe` until it returns true (errors count as false), or throws after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`${what} not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}
