/**
 * Local Redis topologies for the store and void-queue suites: a 3-node Cluster
 * (`redis-server --cluster-enabled yes` on free ports, joined by `redis-cli --cluster create`) and a
 * Sentinel set (one master, one sentinel). Each is a set of child processes the test stops; where
 * redis-server is not installed the caller skips with a message.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createRedisClient, waitForRedis, type RedisClient } from '../redis.js';

const run = promisify(execFile);

export interface RedisTopology {
  /** The REDIS_URL a gateway would be given. */
  url: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  return (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 })).stdout;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms`);
}

/** Why the topologies cannot run here, or undefined when they can. */
async function topologiesUnavailable(): Promise<string | undefined> {
  try {
    await run('redis-server', ['--version']);
    await run('redis-cli', ['--version']);
    return undefined;
  } catch {
    return 'redis-server and redis-cli are not installed: the Cluster and Sentinel runs are skipped';
  }
}

function start(dir: string, args: string[]): ChildProcess {
  const child = spawn(
    'redis-server',
    [...args, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  child.on('error', () => {});
  return child;
}

function closer(children: ChildProcess[], dir: string): () => Promise<void> {
  return async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
}

export async function startRedisCluster(nodes = 3): Promise<RedisTopology> {
  const dir = mkdtempSync(join(tmpdir(), 'phia-cluster-'));
  const ports = await Promise.all(Array.from({ length: nodes }, freePort));
  const children = ports.map((port) =>
    start(dir, ['--port', String(port), '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`]),
  );
  const close = closer(children, dir);
  try {
    for (const port of ports) await waitUntil(`node ${port}`, async () => (await cli(port, 'PING')).trim() === 'PONG');
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-yes'], {
      timeout: 15_000,
    });
    for (const port of ports) {
      await waitUntil(`cluster via ${port}`, async () =>
        (await cli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
      );
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { url: `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`, close };
}

export async function startRedisSentinel(): Promise<RedisTopology> {
  const dir = mkdtempSync(join(tmpdir(), 'phia-sentinel-'));
  const [master, sentinel] = [await freePort(), await freePort()];
  const config = join(dir, 'sentinel.conf');
  writeFileSync(config, `port ${sentinel}\nsentinel monitor phia 127.0.0.1 ${master} 1\n`);
  const children = [start(dir, ['--port', String(master)]), start(dir, [config, '--sentinel'])];
  const close = closer(children, dir);
  try {
    await waitUntil('master', async () => (await cli(master, 'PING')).trim() === 'PONG');
    await waitUntil('sentinel', async () =>
      (await cli(sentinel, 'SENTINEL', 'get-master-addr-by-name', 'phia')).includes(String(master)),
    );
  } catch (error) {
    await close();
    throw error;
  }
  return { url: `redis+sentinel://127.0.0.1:${sentinel}/phia`, close };
}

/** The topologies the store and void-queue suites also run on. */
const TOPOLOGIES = [
  ['redis-cluster', () => startRedisCluster()],
  ['redis-sentinel', startRedisSentinel],
] as const;

/**
 * A ready client of each topology (with its name and REDIS_URL), stopped with the test; none (and a
 * comment saying why) where redis-server is not installed.
 */
export async function topologyClients(t: {
  teardown: (fn: () => unknown) => void;
  comment: (message: string) => void;
}): Promise<[name: string, client: RedisClient, url: string][]> {
  const unavailable = await topologiesUnavailable();
  if (unavailable !== undefined) {
    t.comment(unavailable);
    return [];
  }
  const clients: [string, RedisClient, string][] = [];
  for (const [name, start] of TOPOLOGIES) {
    const topology = await start();
    const client = createRedisClient(topology.url);
    t.teardown(async () => {
      client.disconnect();
      await topology.close();
    });
    await waitForRedis(client, 10_000);
    clients.push([name, client, topology.url]);
  }
  return clients;
}
