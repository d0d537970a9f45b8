/**
 * `app.redis`: the Redis client of the idempotency store and the void queue, or undefined (in-process
 * store and queue). A client this plugin created is closed with the app; a given one is the caller's.
 */
import fp from 'fastify-plugin';
import type { RedisClient } from '../../redis.js';
import { createRedisClient } from '../../redis.js';
import type { AppOptions } from './options.js';

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient | undefined;
  }
}

export default fp<AppOptions>(
  async (app, options) => {
    let redis = options.redis ?? undefined;
    if (options.redis === undefined && options.config.redisUrl !== undefined) {
      let lastLogged = 0;
      const created = createRedisClient(options.config.redisUrl, {
        onError: (error) => {
          if (Date.now() - lastLogged > 10_000) {
            lastLogged = Date.now();
            app.log.warn({ err: error.message }, 'redis error (idempotency falls back to the wallet)');
          }
        },
      });
      redis = created;
      app.addHook('onClose', async () => {
        try {
          await created.quit();
        } catch {
          created.disconnect();
        }
      });
    }
    app.decorate<RedisClient | undefined>('redis', redis);
  },
  { name: 'redis' },
);
