/**
 * The gateway as a Fastify plugin, in the layout of fastify/demo: external plugins (security headers,
 * event-loop pressure), then the app's own (tracing, Redis, metrics, wallet client, idempotency store,
 * void queue, processor, admission, the requests' frame), each decorating the instance and closing
 * what it created; then the routes. Fastify closes plugins in reverse order: admission first (it waits
 * for the requests in progress), Redis, then tracing (the last spans flushed).
 *
 * `buildApp` makes the Fastify instance with the server options (receive timeouts, TLS, request ids,
 * body limit) and registers the plugin.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
} from 'fastify';
import fp from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { GatewayConfig } from './config.js';
import { createLogger, LOG_FLUSH_INTERVAL_MS } from './logger.js';
import { decorateRouteConfig } from './route-config.js';
import helmet from './plugins/external/helmet.js';
import underPressure from './plugins/external/under-pressure.js';
import admission from './plugins/app/admission.js';
import metrics from './plugins/app/metrics.js';
import type { AppOptions } from './plugins/app/options.js';
import processor from './plugins/app/processor.js';
import redis from './plugins/app/redis.js';
import requests from './plugins/app/requests.js';
import store from './plugins/app/store.js';
import tracing from './plugins/app/tracing.js';
import voids from './plugins/app/voids.js';
import wallet from './plugins/app/wallet.js';
import opsRoutes from './routes/ops.js';
import phiaRoutes from './routes/phia.js';

export { DEFAULT_KEY_PREFIX, type AppOptions } from './plugins/app/options.js';
export { errorCodeOf } from './plugins/app/requests.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: GatewayConfig;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Time to receive a request's headers and body, counted from its first byte (Node's headersTimeout
 * and requestTimeout; the handler's time is not part of it). PHIA gives up 6 s after sending, so a
 * request not fully received by then can no longer be answered in time; a client that stalls is
 * answered 408 and disconnected. PHIA's bodies are under 1 KB: a live sender needs milliseconds.
 */
export const RECEIVE_TIMEOUT_MS = 6000;
/** How often Node looks for connections past RECEIVE_TIMEOUT_MS (its default is 30 s). */
export const RECEIVE_CHECK_INTERVAL_MS = 500;

/** The gateway: every plugin and route, in order. */
export async function gatewayApp(app: FastifyInstance, options: AppOptions): Promise<void> {
  app.decorate('config', options.config);
  decorateRouteConfig(app);
  await app.register(helmet);
  await app.register(underPressure, options);
  await app.register(tracing, options);
  await app.register(redis, options);
  await app.register(metrics, options);
  await app.register(wallet, options);
  await app.register(store, options);
  await app.register(voids, options);
  await app.register(processor, options);
  await app.register(admission, options);
  await app.register(requests, options);
  await app.register(phiaRoutes);
  await app.register(opsRoutes);
}

/** Fastify's own options for the gateway. */
export function serverOptions(config: GatewayConfig, logger: FastifyBaseLogger): FastifyServerOptions {
  const receive = {
    headersTimeout: RECEIVE_TIMEOUT_MS,
    requestTimeout: RECEIVE_TIMEOUT_MS,
    connectionsCheckingInterval: RECEIVE_CHECK_INTERVAL_MS,
  };
  const https =
    config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined
      ? { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile), ...receive }
      : null;
  return {
    loggerInstance: logger,
    // One log line per request is written by the requests plugin, not by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
    requestTimeout: RECEIVE_TIMEOUT_MS,
    ...(https === null ? { http: receive } : { https }),
  } as FastifyServerOptions;
}

export interface BuildAppOptions extends AppOptions {
  /** Default: pino at config.logLevel, with redaction (flushed when the app closes). */
  logger?: FastifyBaseLogger;
}

export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { logger: given, ...appOptions } = options;
  const own = given === undefined ? createLogger(options.config.logLevel) : undefined;
  const app = Fastify(
    serverOptions(options.config, given ?? (own as FastifyBaseLogger)),
  ).withTypeProvider<TypeBoxTypeProvider>() as unknown as FastifyInstance;
  if (own !== undefined) {
    // A quiet gateway's lines would wait in the buffer until it fills.
    const flusher = setInterval(() => {
      try {
        own.flush();
      } catch {
        // stdout is gone (its reader closed the pipe): nothing can be written any more.
      }
    }, LOG_FLUSH_INTERVAL_MS).unref();
    // Runs last on close (hooks run in reverse): what the logger buffered goes out.
    app.addHook('onClose', async () => {
      clearInterval(flusher);
      own.flush();
    });
  }
  await app.register(fp(gatewayApp), appOptions);
  return app;
}
