/**
 * `app.store`: the idempotency store, in Redis when there is one, else in process. `tracedStore` is
 * the view the processor gets when tracing is on: `begin` and `complete` as spans of the request.
 */
import fp from 'fastify-plugin';
import { failSpan, SPAN_KIND, TRACE_ATTR, type PhiaTracer } from '@phia/proto';
import { InProcessIdempotencyStore } from '../../idempotency/memory-store.js';
import { RedisIdempotencyStore } from '../../idempotency/redis-store.js';
import type { BeginResult, IdempotencyStore } from '../../idempotency/store.js';
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

/**
 * The store with a client span around each `begin` and `complete` made under a request's span (its
 * outcome as an attribute); `release` is not traced. Tracing off: the store itself.
 */
export function tracedStore(store: IdempotencyStore, tracer: PhiaTracer): IdempotencyStore {
  if (!tracer.enabled) return store;
  const traced = async <R>(operation: string, call: () => Promise<R>, outcome: (result: R) => string) => {
    if (tracer.active() === undefined) return call();
    const span = tracer.startSpan(`idempotency ${operation}`, SPAN_KIND.CLIENT, {
      [TRACE_ATTR.store]: store.name,
      ...(store.name === 'redis' ? { [TRACE_ATTR.dbSystem]: 'redis' } : {}),
      [TRACE_ATTR.dbOperation]: operation,
    });
    try {
      const result = await call();
      const what = outcome(result);
      span.setAttribute(TRACE_ATTR.outcome, what);
      // The store never throws: an unreachable Redis is an outcome, and a fault of this call.
      if (what === 'unreachable' || what === 'missed') failSpan(span, what);
      return result;
    } finally {
      span.end();
    }
  };
  return {
    name: store.name,
    begin: (key, fingerprint, options) =>
      traced(
        'begin',
        () => store.begin(key, fingerprint, options),
        (result: BeginResult) => result.kind,
      ),
    complete: (key, token, fingerprint, answer, of) =>
      traced(
        'complete',
        () => store.complete(key, token, fingerprint, answer, of),
        (done) => done,
      ),
    unansweredAfter: (arrivedAt) => store.unansweredAfter(arrivedAt),
    release: (key, token) => store.release(key, token),
    ping: () => store.ping(),
    close: () => store.close(),
  };
}
