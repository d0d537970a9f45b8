/** `app.processor`: what the PHIA routes hand a validated request to. */
import fp from 'fastify-plugin';
import { PhiaProcessor } from '../../phia/processor.js';
import type { AppOptions } from './options.js';
import { tracedStore } from './store.js';

declare module 'fastify' {
  interface FastifyInstance {
    processor: PhiaProcessor;
  }
}

export default fp<AppOptions>(
  async (app, { config }) => {
    const { wallet, voids, metrics, tracer } = app;
    const store = tracedStore(app.store, tracer);
    app.decorate('processor', new PhiaProcessor({ wallet, store, voids, metrics, currencies: config.currencies }));
  },
  { name: 'processor', dependencies: ['metrics', 'wallet', 'store', 'voids', 'tracing'] },
);
