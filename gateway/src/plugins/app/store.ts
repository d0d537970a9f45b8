/** `app.store`: the idempotency store, in Redis when there is one, else in process. */
import fp from 'fastify-plugin';
import { InProcessIdempotencyStore } from '../../idempotency/memory-store.js';
import { RedisIdempotencyStore } from '../../idempotency/redis-store.js';
import type { IdempotencyStore } from '../../idempotency/store.js';
import { DEFAULT_KEY_PREFIX, type AppOptions } from './options.js';

declare module 'fastify' {
  interface FastifyInstance {
    store: IdempotencyStore;
  }
}

export default fp<AppOptions>(
  async (app, { config, keyPrefix }) => {
    const ttlSeconds = config.idempotencyTtlSeconds;
    const store: IdempotencyStore =
      app.redis === undefined
        ? new InProcessIdempotencyStore({ ttlSeconds })
        : new RedisIdempotencyStore({ redis: app.redis, keyPrefix: keyPrefix ?? DEFAULT_KEY_PREFIX, ttlSeconds });
    app.addHook('onClose', async () => store.close());
    app.decorate('store', store);
  },
  { name: 'store', dependencies: ['redis'] },
);
