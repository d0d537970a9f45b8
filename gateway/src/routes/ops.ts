/**
 * Operational endpoints, outside PHIA's authentication: liveness, readiness, Prometheus metrics.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { IdempotencyStore } from '../idempotency/store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { WalletClient } from '../wallet-client/client.js';

export interface OpsDeps {
  store: IdempotencyStore;
  wallet: WalletClient;
  metrics: GatewayMetrics;
  /** Whether Redis is configured (else the store is in-process and "redis" reads "disabled"). */
  redisConfigured: boolean;
}

const Health = Type.Object({ status: Type.String() });
const Readiness = Type.Object({
  status: Type.String(),
  wallet: Type.String(),
  redis: Type.String(),
  pending_voids: Type.Integer(),
});

export function registerOpsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/healthz', { schema: { response: { 200: Health } } }, async () => ({ status: 'ok' }));

  /**
   * 503 when the wallet or a configured Redis cannot be reached, naming which. With Redis down the
   * gateway still answers correctly (straight to the wallet), so liveness (/healthz) stays up and the
   * process is not restarted; readiness says "degraded" so a load balancer can prefer healthy peers.
   */
  app.get('/readyz', { schema: { response: { 200: Readiness, 503: Readiness } } }, async (_request, reply) => {
    const [walletUp, redisUp, pending] = await Promise.all([
      deps.wallet.ping(500),
      deps.redisConfigured ? deps.store.ping() : Promise.resolve(true),
      deps.metrics.pendingVoids.get().then((metric) => metric.values[0]?.value ?? 0),
    ]);
    const redis = deps.redisConfigured ? (redisUp ? 'ok' : 'down') : 'disabled';
    const status = !walletUp ? 'unavailable' : redis === 'down' ? 'degraded' : 'ready';
    return reply.code(status === 'ready' ? 200 : 503).send({
      status,
      wallet: walletUp ? 'ok' : 'down',
      redis,
      pending_voids: pending,
    });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(text);
  });
}
