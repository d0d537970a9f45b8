/**
 * `app.voids`: the void queue (rule 5), durable in Redis when there is one, else in process beside
 * the in-process store's answers. Its drain loop starts once the app is ready and stops when it closes.
 * `app.pendingVoids()` counts what waits, by backend.
 */
import fp from 'fastify-plugin';
import { PhiaError } from '@phia/proto';
import { InProcessIdempotencyStore } from '../../idempotency/memory-store.js';
import type { PendingVoids } from '../../metrics.js';
import { waitForRedis } from '../../redis.js';
import { RedisVoidBackend } from '../../voids/backends.js';
import { VoidQueue } from '../../voids/queue.js';
import { DEFAULT_KEY_PREFIX, type AppOptions } from './options.js';

declare module 'fastify' {
  interface FastifyInstance {
    voids: VoidQueue;
    pendingVoids(): Promise<PendingVoids>;
  }
}

export default fp<AppOptions>(
  async (app, options) => {
    const { config } = options;
    const { metrics, redis, wallet, store, tracer } = app;
    const durable =
      redis === undefined
        ? undefined
        : new RedisVoidBackend(redis, options.keyPrefix ?? DEFAULT_KEY_PREFIX, config.idempotencyTtlSeconds);
    const voids = new VoidQueue({
      ...options.voidQueue,
      // No spans for background deliveries: they are not part of the request that queued them.
      send: (job) => tracer.withoutSpan(() => wallet.void(job)),
      ...(durable === undefined ? (store instanceof InProcessIdempotencyStore ? { answers: store } : {}) : { durable }),
      onDelivered: (job, attempts, result) => {
        metrics.voidsDelivered.inc({ kind: job.kind });
        const outcome = (result as { outcome?: unknown } | undefined)?.outcome;
        app.log.info(
          { kind: job.kind, tx_id: job.tx_id, code: job.error_code, attempts, outcome },
          'void confirmed by the wallet',
        );
      },
      onFailed: (job, attempts, error) => {
        metrics.voidFailures.inc({ kind: job.kind });
        const code = error instanceof PhiaError ? error.code : 'INTERNAL';
        app.log.warn({ kind: job.kind, tx_id: job.tx_id, attempts, code }, 'void not confirmed yet, will retry');
      },
      onUnappliable: (job, attempts, code) => {
        metrics.voidsUnappliable.inc({ kind: job.kind, code });
        app.log.error(
          { kind: job.kind, tx_id: job.tx_id, attempt_id: job.attempt_id, attempts, code },
          'void refused by the wallet: it cannot be applied by retrying (still retried); reconcile by hand',
        );
      },
      onBackendError: (backend, error) =>
        app.log.warn({ backend, err: (error as Error).message }, 'void queue backend error'),
    });
    app.decorate('voids', voids);

    let lastRedisCount = 0;
    app.decorate('pendingVoids', async (): Promise<PendingVoids> => {
      const total = await voids.pendingCount();
      if (durable === undefined) return { memory: total };
      try {
        lastRedisCount = await durable.count();
      } catch {
        // Redis away: the last count it gave (the queue reports the error).
      }
      return { redis: lastRedisCount, memory: Math.max(0, total - lastRedisCount) };
    });

    // (Re)connected: voids kept in memory meanwhile move to Redis at once (O3).
    const onRedisReady = () => voids.kick();
    redis?.on('ready', onRedisReady);
    app.addHook('onReady', async () => {
      // Ready once Redis answers (or stayed away for 2 s): without it money requests are only settled.
      if (redis !== undefined) await waitForRedis(redis, 2000).catch(() => undefined);
      voids.start();
    });
    app.addHook('onClose', async () => {
      redis?.off('ready', onRedisReady);
      await voids.close();
    });
  },
  { name: 'voids', dependencies: ['metrics', 'redis', 'wallet', 'store', 'tracing'] },
);
