/**
 * Operational endpoints, outside PHIA's authentication: liveness, readiness, Prometheus metrics.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';

const Health = Type.Object({ status: Type.String() });
const Readiness = Type.Object({
  status: Type.String(),
  wallet: Type.String(),
  redis: Type.String(),
  pending_voids: Type.Integer(),
});

const opsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', { schema: { response: { 200: Health } } }, async () => ({ status: 'ok' }));

  /**
   * 503 when the wallet does not serve (its health `Check`: down, or starting up) or a configured
   * Redis cannot be reached, naming which. With Redis down the gateway still answers correctly
   * (straight to the wallet), so liveness (/healthz) stays up and the process is not restarted;
   * readiness says "degraded" so a load balancer can prefer healthy peers.
   */
  app.get('/readyz', { schema: { response: { 200: Readiness, 503: Readiness } } }, async (_request, reply) => {
    const [walletHealth, redisUp, pending] = await Promise.all([
      app.wallet.health(1000),
      app.redis === undefined ? Promise.resolve(true) : app.store.ping(),
      app.pendingVoids(),
    ]);
    const walletUp = walletHealth === 'SERVING';
    const redis = app.redis === undefined ? 'disabled' : redisUp ? 'ok' : 'down';
    const status = !walletUp ? 'unavailable' : redis === 'down' ? 'degraded' : 'ready';
    return reply.code(status === 'ready' ? 200 : 503).send({
      status,
      wallet: walletUp ? 'ok' : walletHealth === 'down' ? 'down' : 'not_serving',
      redis,
      pending_voids: (pending.redis ?? 0) + pending.memory,
    });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await app.metrics.registry.metrics();
    return reply.type(app.metrics.registry.contentType).send(text);
  });
};

export default opsRoutes;
