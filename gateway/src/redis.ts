/**
 * The gateway's Redis connection, tuned so that Redis is a fast path that can fail without taking
 * the gateway down: no offline queue (a command while disconnected fails at once), a short command
 * timeout, no per-command retries, reconnection in the background, and automatic pipelining.
 * REDIS_URL names one server (`redis://`, `rediss://`), a Sentinel set (`redis+sentinel://`) or a
 * Cluster (`redis+cluster://`).
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** One server, a Sentinel-managed master, or a Cluster: the same commands and scripts. */
export type RedisClient = Redis | Cluster;

export interface GatewayRedisOptions {
  /** Per-command timeout; a slower Redis counts as down for that request. */
  commandTimeoutMs?: number;
  onError?: (error: Error) => void;
  extra?: RedisOptions;
}

export interface RedisTarget {
  mode: 'server' | 'sentinel' | 'cluster';
  /** server: the URL as given. */
  url?: string;
  /** sentinel: the sentinels; cluster: some of its nodes. */
  nodes: { host: string; port: number }[];
  /** sentinel: the master's name. */
  name?: string;
  username?: string;
  password?: string;
  db?: number;
  tls: boolean;
}

/**
 * Reads REDIS_URL: `redis[s]://...` (one server), `redis[s]+sentinel://[user:pass@]h1:p1,h2:p2/master[/db]`
 * or `redis[s]+cluster://[user:pass@]h1:p1,h2:p2`. Throws a message for the operator.
 */
export function parseRedisUrl(url: string): RedisTarget {
  const match = /^(rediss?)(?:\+(sentinel|cluster))?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/([^?#]*))?$/.exec(
    url,
  );
  if (match === null)
    throw new Error('REDIS_URL must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL');
  const [, scheme, kind, user, pass, hosts, path] = match as unknown as (string | undefined)[];
  const tls = scheme === 'rediss';
  const auth = {
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(pass ? { password: decodeURIComponent(pass) } : {}),
  };
  if (kind === undefined) {
    new URL(url); // a malformed host throws here
    return { mode: 'server', url, nodes: [], tls, ...auth };
  }
  const nodes = (hosts ?? '').split(',').map((node) => {
    const hostPort = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\]):([0-9]{1,5})$/.exec(node);
    if (hostPort === null || Number(hostPort[2]) > 65535) throw new Error(`REDIS_URL: "${node}" is not host:port`);
    return { host: (hostPort[1] as string).replace(/^\[|\]$/g, ''), port: Number(hostPort[2]) };
  });
  const [name, db] = (path ?? '').split('/');
  if (kind === 'cluster') {
    if (path) throw new Error('REDIS_URL: a cluster URL has no path (a cluster has one database)');
    return { mode: 'cluster', nodes, tls, ...auth };
  }
  if (!name) throw new Error('REDIS_URL: a sentinel URL names its master: redis+sentinel://host:port/mymaster');
  if (db !== undefined && !/^[0-9]{1,2}$/.test(db)) throw new Error('REDIS_URL: the database must be a number');
  return { mode: 'sentinel', nodes, name, tls, ...auth, ...(db === undefined ? {} : { db: Number(db) }) };
}

export function createRedisClient(url: string, options: GatewayRedisOptions = {}): RedisClient {
  const target = parseRedisUrl(url);
  const tuned: RedisOptions = {
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? 250,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    // Reconnect soon after Redis is back: until then answers cannot be stored, and copies through
    // other gateways cannot see them. A refused connection on a local network costs nothing.
    retryStrategy: (times) => Math.min(times * 50, 500),
    // Commands issued in the same tick share one socket write (one write per request costs more CPU
    // than the command itself on the replay path).
    enableAutoPipelining: true,
    ...options.extra,
  };
  const auth = { username: target.username, password: target.password, ...(target.tls ? { tls: {} } : {}) };
  let client: RedisClient;
  if (target.mode === 'cluster') {
    client = new Cluster(target.nodes, {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: (times) => Math.min(times * 50, 500),
      redisOptions: { ...tuned, ...auth },
      ...(options.extra?.lazyConnect === true ? { lazyConnect: true } : {}),
    });
  } else if (target.mode === 'sentinel') {
    client = new Redis({
      ...tuned,
      ...auth,
      sentinels: target.nodes,
      name: target.name as string,
      ...(target.db === undefined ? {} : { db: target.db }),
      sentinelRetryStrategy: (times) => Math.min(times * 50, 500),
    });
  } else {
    client = new Redis(target.url as string, tuned);
  }
  // Without a listener an 'error' event would crash the process; reconnection goes on by itself.
  client.on('error', (error: Error) => options.onError?.(error));
  return client;
}

/**
 * The prefix of every key. In a Cluster all of them share one hash slot (the prefix as hash tag):
 * a script touches a key's answer, its lock and the outbox together.
 */
export function keyPrefixFor(client: RedisClient, prefix: string): string {
  return client.isCluster ? `{${prefix}}` : prefix;
}

/** Resolves once the client is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(client: RedisClient, timeoutMs = 2000): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off('ready', onReady);
    };
    client.on('ready', onReady);
  });
}
