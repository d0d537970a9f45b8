/** @phia/gateway: the Fastify gateway PHIA talks to. */
export { buildApp, errorCodeOf, DEFAULT_KEY_PREFIX, type BuildAppOptions } from './app.js';
export { startGateway, type RunningGateway, type StartGatewayOptions } from './server.js';
export { loadConfig, ConfigError, AUTH_MODES, type AuthMode, type GatewayConfig, type Env } from './config.js';
export { signBody, SignatureVerifier } from './auth/signature.js';
export { IP_PRESETS, IpMatcher, clientAddress, parseIpList } from './auth/ip.js';
export { parseExactJson, parseExactJsonBuffer } from './body/exact-json.js';
export * from './phia/contract.js';
export type { IdempotencyStore, StoredAnswer, BeginResult } from './idempotency/store.js';
export { RedisIdempotencyStore } from './idempotency/redis-store.js';
export { InProcessIdempotencyStore } from './idempotency/memory-store.js';
export { createRedisClient, waitForRedis } from './redis.js';
export { WalletClient, WalletError, toWalletError } from './wallet-client/client.js';
export type * from './wallet-client/client.js';
export { VoidQueue } from './voids/queue.js';
export { MemoryVoidBackend, RedisVoidBackend, type VoidJob, type VoidBackend } from './voids/backends.js';
export { createLogger } from './logger.js';
