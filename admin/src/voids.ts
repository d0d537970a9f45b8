/**
 * `phia-admin voids list|retry`: the gateways' void outbox in Redis (REDIS_URL in any of the
 * gateway's forms: one server, Sentinel or Cluster; key prefix --prefix, default phia:), with each void's age (since it was queued), attempts and next attempt. `retry`
 * makes voids due now: the gateways' retriers send them at their next poll (the wallet's Void is
 * idempotent, so one sent twice is harmless).
 */
import { createRedisClient, keyPrefixFor, type RedisClient } from '@phia/gateway/redis';
import { parseVoidMember, voidOutboxKeys, type VoidMember } from '@phia/proto';
import { UnreachableError, UsageError } from './wallet.js';

export interface PendingVoid extends VoidMember {
  attempts: number;
  /** When it was queued; null for a void queued before enqueue times were kept. */
  enqueued_at: string | null;
  age_seconds: number | null;
  next_attempt_at: string;
}

/**
 * Runs fn with a client of REDIS_URL, made as the gateways make theirs, and the key prefix as they
 * use it (in a Cluster, a hash tag); a Redis out of reach is UnreachableError (exit 3).
 */
export async function withRedis<T>(
  env: NodeJS.ProcessEnv,
  prefix: string,
  fn: (redis: RedisClient, prefix: string) => Promise<T>,
): Promise<T> {
  const url = env.REDIS_URL;
  if (url === undefined || url === '') throw new UsageError('the void outbox lives in Redis: set REDIS_URL');
  const shown = url.replace(/\/\/[^@/]*@/, '//***@');
  let redis: RedisClient;
  try {
    redis = createRedisClient(url, {
      commandTimeoutMs: 3000,
      extra: { lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null },
    });
  } catch (error) {
    throw new UsageError(`REDIS_URL ${shown}: ${(error as Error).message}`);
  }
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new UnreachableError(`redis ${shown}: ${(error as Error).message}`);
  }
  try {
    return await fn(redis, keyPrefixFor(redis, prefix));
  } finally {
    redis.disconnect();
  }
}

/** Every void in the outbox, oldest first (by when it was queued). */
export async function listVoids(redis: RedisClient, prefix: string, now = Date.now()): Promise<PendingVoid[]> {
  const keys = voidOutboxKeys(prefix);
  const flat = await redis.zrange(keys.jobs, '0', '-1', 'WITHSCORES');
  const members = flat.filter((_, i) => i % 2 === 0);
  if (members.length === 0) return [];
  const [attempts, enqueued] = await Promise.all([
    redis.hmget(keys.attempts, ...members),
    redis.hmget(keys.enqueued, ...members),
  ]);
  const voids: PendingVoid[] = [];
  members.forEach((member, i) => {
    const job = parseVoidMember(member);
    if (job === undefined) return;
    const at = enqueued[i] === null || enqueued[i] === undefined ? null : Number(enqueued[i]);
    voids.push({
      ...job,
      attempts: Number(attempts[i] ?? 0),
      enqueued_at: at === null ? null : new Date(at).toISOString(),
      age_seconds: at === null ? null : Math.max(0, Math.round((now - at) / 1000)),
      next_attempt_at: new Date(Number(flat[i * 2 + 1])).toISOString(),
    });
  });
  return voids.sort((a, b) => (a.enqueued_at ?? '').localeCompare(b.enqueued_at ?? ''));
}

/** Makes the voids due now (all, or the one of kind and tx_id); returns those rescheduled. */
export async function retryVoids(
  redis: RedisClient,
  prefix: string,
  only?: { kind: string; tx_id: string },
  now = Date.now(),
): Promise<VoidMember[]> {
  const keys = voidOutboxKeys(prefix);
  const retried: VoidMember[] = [];
  for (const member of await redis.zrange(keys.jobs, '0', '-1')) {
    const job = parseVoidMember(member);
    if (job === undefined || (only !== undefined && (job.kind !== only.kind || job.tx_id !== only.tx_id))) continue;
    // XX: a void confirmed meanwhile stays gone.
    await redis.zadd(keys.jobs, 'XX', now, member);
    if ((await redis.zscore(keys.jobs, member)) !== null) retried.push(job);
  }
  return retried;
}

/** 3725 → "1h2m5s". */
export function duration(seconds: number | null): string {
  if (seconds === null) return '?';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${s}s`;
}
