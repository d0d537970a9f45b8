/**
 * The gateway's Redis connection, tuned so that Redis is a fast path that can fail without taking
 * the gateway down: no offline queue (a command while disconnected fails at once), a short command
 * timeout, no per-command retries, reconnection in the background, and automatic pipelining.
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface GatewayRedisOptions {
  /** Per-command timeout; a slower Redis counts as down for that request. */
  commandTimeoutMs?: number;
  onError?: (error: Error) => void;
  extra?: RedisOptions;
}

export function createRedisClient(url: string, options: GatewayRedisOptions = {}): Redis {
  const client = new Redis(url, {
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
  });
  // Without a listener an 'error' event would crash the process; reconnection goes on by itself.
  client.on('error', (error: Error) => options.onError?.(error));
  return client;
}

/** Resolves once the client is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(client: Redis, timeoutMs = 2000): Promise<void> {
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
