/**
 * The event loop's delay, measured by @fastify/under-pressure, and `app.overloaded()`, which admission
 * reads: the mean delay was above GATEWAY_MAX_EVENT_LOOP_DELAY_MS in two 100 ms windows in a row, so
 * that one pause (a GC, a JIT burst, the process descheduled on a busy machine) sheds nothing.
 * Infinity is a window without a single sample (the loop was blocked for all of it, e.g. by start-up
 * schema compilation): a past stall, not a backlog, so it sheds nothing either. under-pressure gets no
 * limit of its own, so it adds no per-request hook (that hook read Fastify's `request.routeOptions`, a
 * new object per access, only to let every request through).
 */
import underPressure from '@fastify/under-pressure';
import fp from 'fastify-plugin';
import type { GatewayConfig } from '../../config.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether the event loop is overloaded now (see the module comment). */
    overloaded(): boolean;
  }
}

export default fp<{ config: GatewayConfig }>(
  async (app, { config }) => {
    await app.register(underPressure, { sampleInterval: 100, exposeStatusRoute: false });
    const limit = config.maxEventLoopDelayMs;
    const delays = [0, 0];
    const timer = setInterval(() => {
      delays.shift();
      delays.push(app.memoryUsage().eventLoopDelay);
    }, 100);
    timer.unref();
    app.addHook('onClose', async () => clearInterval(timer));
    app.decorate('overloaded', () => limit > 0 && delays.every((delay) => Number.isFinite(delay) && delay > limit));
  },
  { name: 'under-pressure' },
);
