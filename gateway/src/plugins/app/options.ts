/** What the app's plugins are given: the configuration, and what a caller (a test) provides instead. */
import type { SpanExporter } from '@phia/proto';
import type { RedisClient } from '../../redis.js';
import type { GatewayConfig } from '../../config.js';
import type { VoidQueueOptions } from '../../voids/queue.js';

export const DEFAULT_KEY_PREFIX = 'phia:';

export interface AppOptions {
  config: GatewayConfig;
  /**
   * Redis for the idempotency store and the void queue. Default: a client of config.redisUrl when
   * set (closed with the app); `null` forces in-process even when REDIS_URL is set.
   */
  redis?: RedisClient | null;
  /** Prefix of every Redis key (idempotency and voids). Default `phia:`. */
  keyPrefix?: string;
  /** Tuning of the void queue's retries (tests shorten them). */
  voidQueue?: Pick<VoidQueueOptions, 'baseDelayMs' | 'maxDelayMs' | 'pollIntervalMs' | 'leaseMs'>;
  /** Collect Node's default process metrics (default true). */
  defaultMetrics?: boolean;
  /** Tests: tracing on, each span exported here as it ends (instead of OTLP to config.tracing.endpoint). */
  spanExporter?: SpanExporter;
}
