/**
 * `app.wallet`: the one gRPC client of the wallet, its calls observed by the metrics (and traced when
 * tracing is on); closed with the app.
 */
import fp from 'fastify-plugin';
import { WalletClient } from '../../wallet-client/client.js';
import type { AppOptions } from './options.js';

declare module 'fastify' {
  interface FastifyInstance {
    wallet: WalletClient;
  }
}

export default fp<AppOptions>(
  async (app, { config }) => {
    const { metrics } = app;
    // Metric children by (method, outcome): no label hashing per call.
    const observed = new Map<string, { observe(seconds: number): void }>();
    const wallet = new WalletClient({
      address: config.walletAddr,
      tls: config.walletTls,
      deadlineMs: config.walletDeadlineMs,
      maxInFlight: config.walletMaxInFlight,
      isOverloaded: () => app.overloaded(),
      tracer: app.tracer,
      onCall: (method, outcome, seconds) => {
        const key = `${method} ${outcome}`;
        let histogram = observed.get(key);
        if (histogram === undefined) observed.set(key, (histogram = metrics.walletCalls.labels({ method, outcome })));
        histogram.observe(seconds);
        if (outcome !== 'ok') metrics.walletErrors.inc({ method, code: outcome });
      },
    });
    app.addHook('onClose', async () => wallet.close());
    app.decorate('wallet', wallet);
  },
  { name: 'wallet', dependencies: ['metrics', 'under-pressure', 'tracing'] },
);
