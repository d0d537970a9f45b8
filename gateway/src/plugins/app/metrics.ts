/** `app.metrics`: the app's own Prometheus registry and metrics (pending voids read at scrape time). */
import fp from 'fastify-plugin';
import { createMetrics, type GatewayMetrics } from '../../metrics.js';
import type { AppOptions } from './options.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: GatewayMetrics;
  }
}

export default fp<AppOptions>(
  async (app, options) => {
    app.decorate(
      'metrics',
      createMetrics({
        // The void queue is registered after the metrics; a scrape comes once the app is ready.
        pendingVoids: () => app.pendingVoids(),
        ...(options.defaultMetrics === undefined ? {} : { defaultMetrics: options.defaultMetrics }),
      }),
    );
  },
  { name: 'metrics' },
);
