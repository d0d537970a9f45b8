/**
 * The gateway's Fastify factory. `buildApp` wires configuration, the idempotency store, the wallet
 * client and the void queue into one app and closes what it created when the app closes.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import helmet from '@fastify/helmet';
import underPressure from '@fastify/under-pressure';
import type { Redis } from 'ioredis';
import { isErrorCode, PhiaError, type ErrorCode } from '@phia/proto';
import { createPhiaAuth } from './auth/plugin.js';
import { installJsonParser } from './body/json-parser.js';
import type { GatewayConfig } from './config.js';
import { InProcessIdempotencyStore } from './idempotency/memory-store.js';
import { RedisIdempotencyStore } from './idempotency/redis-store.js';
import type { IdempotencyStore } from './idempotency/store.js';
import { createLogger } from './logger.js';
import { createMetrics, type GatewayMetrics } from './metrics.js';
import { ACTION_FIELD, errorAnswer, httpStatusOf, isAction, NOT_FOUND_ANSWER } from './phia/contract.js';
import { PhiaProcessor } from './phia/processor.js';
import { createRedisClient, waitForRedis } from './redis.js';
import { registerOpsRoutes } from './routes/ops.js';
import { JSON_TYPE, registerPhiaRoutes } from './routes/phia.js';
import { RedisVoidBackend } from './voids/backends.js';
import { VoidQueue, type VoidQueueOptions } from './voids/queue.js';
import { WalletClient, WalletError } from './wallet-client/client.js';

export const DEFAULT_KEY_PREFIX = 'phia:';

export interface BuildAppOptions {
  config: GatewayConfig;
  /** Default: pino at config.logLevel, with redaction. */
  logger?: FastifyBaseLogger;
  /** Default: a client of config.walletAddr with config.walletDeadlineMs (closed with the app). */
  wallet?: WalletClient;
  /**
   * Redis for the idempotency store and the void queue. Default: a client of config.redisUrl when
   * set (closed with the app); `null` forces in-process even when REDIS_URL is set.
   */
  redis?: Redis | null;
  /** Default: Redis store over `redis`, else in-process. */
  idempotencyStore?: IdempotencyStore;
  /** Prefix of every Redis key (idempotency and voids). Default `phia:`. */
  keyPrefix?: string;
  /** Tuning of the void queue's retries (tests shorten them). */
  voidQueue?: Pick<VoidQueueOptions, 'baseDelayMs' | 'maxDelayMs' | 'pollIntervalMs' | 'leaseMs'>;
  /** Collect Node's default process metrics (default true). */
  defaultMetrics?: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    gateway: {
      config: GatewayConfig;
      store: IdempotencyStore;
      wallet: WalletClient;
      voids: VoidQueue;
      metrics: GatewayMetrics;
    };
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

export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const ownLogger = options.logger === undefined ? createLogger(config.logLevel) : undefined;
  const logger: FastifyBaseLogger = options.logger ?? (ownLogger as FastifyBaseLogger);
  const cleanups: (() => Promise<void> | void)[] = [];

  const receive = {
    headersTimeout: RECEIVE_TIMEOUT_MS,
    requestTimeout: RECEIVE_TIMEOUT_MS,
    connectionsCheckingInterval: RECEIVE_CHECK_INTERVAL_MS,
  };
  const https =
    config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined
      ? { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile), ...receive }
      : null;

  const app = Fastify({
    loggerInstance: logger,
    // One log line per request is written by the onResponse hook below, not by Fastify.
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
  }) as unknown as FastifyInstance;

  // Resources: the app closes what it created, in reverse order of creation.
  let redis = options.redis;
  if (redis === undefined && config.redisUrl !== undefined) {
    let lastLogged = 0;
    const created = createRedisClient(config.redisUrl, {
      onError: (error) => {
        if (Date.now() - lastLogged > 10_000) {
          lastLogged = Date.now();
          app.log.warn({ err: error.message }, 'redis error (idempotency falls back to the wallet)');
        }
      },
    });
    redis = created;
    cleanups.push(async () => {
      try {
        await created.quit();
      } catch {
        created.disconnect();
      }
    });
  }
  const redisClient = redis ?? undefined;

  // Collected at scrape time only, when `voids` exists.
  const metrics: GatewayMetrics = createMetrics({
    pendingVoids: () => voids.pendingCount(),
    ...(options.defaultMetrics === undefined ? {} : { defaultMetrics: options.defaultMetrics }),
  });
  const onWalletCall = (method: string, outcome: string, seconds: number) => {
    metrics.walletCalls.observe({ method, outcome }, seconds);
    if (outcome !== 'ok') metrics.walletErrors.inc({ method, code: outcome });
  };
  // Set once under-pressure is registered (below): the wallet client refuses calls while it says so.
  let overloaded: () => boolean = () => false;
  let wallet = options.wallet;
  if (wallet === undefined) {
    const created = new WalletClient({
      address: config.walletAddr,
      tls: config.walletTls,
      deadlineMs: config.walletDeadlineMs,
      maxInFlight: config.walletMaxInFlight,
      isOverloaded: () => overloaded(),
      onCall: onWalletCall,
    });
    wallet = created;
    cleanups.push(() => created.close());
  }
  const walletClient = wallet;

  let store = options.idempotencyStore;
  let inProcess: InProcessIdempotencyStore | undefined;
  if (store === undefined) {
    const created: IdempotencyStore =
      redisClient === undefined
        ? (inProcess = new InProcessIdempotencyStore({ ttlSeconds: config.idempotencyTtlSeconds }))
        : new RedisIdempotencyStore({ redis: redisClient, keyPrefix, ttlSeconds: config.idempotencyTtlSeconds });
    store = created;
    cleanups.push(() => created.close());
  }
  const idempotencyStore = store;

  const voids = new VoidQueue({
    ...options.voidQueue,
    send: (job) => walletClient.void(job),
    ...(redisClient === undefined
      ? inProcess === undefined
        ? {}
        : { answers: inProcess }
      : { durable: new RedisVoidBackend(redisClient, keyPrefix, config.idempotencyTtlSeconds) }),
    onDelivered: (job, attempts, result) => {
      metrics.voidsDelivered.inc({ kind: job.kind });
      const outcome = (result as { outcome?: unknown } | undefined)?.outcome;
      app.log.info(
        { kind: job.kind, tx_id: job.tx_id, code: job.error_code, attempts, outcome },
        'void confirmed by the wallet',
      );
    },
    onFailed: (job, attempts, error) => {
      metrics.voidFailures.inc({ kind: job.kind });
      const code = error instanceof PhiaError ? error.code : 'INTERNAL';
      app.log.warn({ kind: job.kind, tx_id: job.tx_id, attempts, code }, 'void not confirmed yet, will retry');
    },
    onUnappliable: (job, attempts, code) => {
      metrics.voidsUnappliable.inc({ kind: job.kind, code });
      app.log.error(
        { kind: job.kind, tx_id: job.tx_id, attempt_id: job.attempt_id, attempts, code },
        'void refused by the wallet: it cannot be applied by retrying (still retried); reconcile by hand',
      );
    },
    onBackendError: (backend, error) =>
      app.log.warn({ backend, err: (error as Error).message }, 'void queue backend error'),
  });
  cleanups.push(() => voids.close());
  if (redisClient !== undefined) {
    // (Re)connected: voids kept in memory meanwhile move to Redis at once (O3).
    const onRedisReady = () => voids.kick();
    redisClient.on('ready', onRedisReady);
    cleanups.push(() => {
      redisClient.off('ready', onRedisReady);
    });
  }

  app.decorate('gateway', { config, store: idempotencyStore, wallet: walletClient, voids, metrics });

  await app.register(helmet, { global: true });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  // Load shedding. under-pressure only measures the event-loop delay (its handler lets every request
  // through); `overloaded` reads it every 100 ms. Two places shed:
  // - here, once the body is read and authenticated, balance requests while the loop is overloaded
  //   or 4 x WALLET_MAX_IN_FLIGHT PHIA requests are in progress already, before any store or wallet
  //   work. Money requests are not shed here: a 503 that is neither stored nor voided could let a
  //   later copy apply (rule 5);
  // - the wallet client's admission check (WALLET_MAX_IN_FLIGHT, and the same overload signal for
  //   requests admitted here just before the loop got overloaded): there the 503 is stored for
  //   duplicates and voided like any undecided error, so it can never apply (rule 5).
  await app.register(underPressure, {
    maxEventLoopDelay: config.maxEventLoopDelayMs,
    sampleInterval: 100,
    exposeStatusRoute: false,
    pressureHandler: () => undefined,
  });
  // Overloaded: the mean event-loop delay was above the limit in two sample windows in a row (about
  // 200 ms), so that one pause (a GC, a JIT burst on a cold start, the process descheduled on a busy
  // machine) sheds nothing. Infinity means a window without a single sample (the loop was blocked for
  // all of it, e.g. by start-up schema compilation): a past stall, not a backlog, so it sheds nothing.
  const delays = [0, 0];
  const delayTimer = setInterval(() => {
    delays.shift();
    delays.push(app.memoryUsage().eventLoopDelay);
  }, 100);
  delayTimer.unref();
  cleanups.push(() => clearInterval(delayTimer));
  overloaded = () =>
    config.maxEventLoopDelayMs > 0 &&
    delays.every((delay) => Number.isFinite(delay) && delay > config.maxEventLoopDelayMs);
  // PHIA requests in progress at most (4 x WALLET_MAX_IN_FLIGHT): the rest would only queue in front
  // of the wallet client's own bound, each costing its store and void round trips on a saturated loop.
  // Counted from preHandler, once the body is read and the signature and allowlist passed, so that
  // clients stalling in their bodies (or unauthenticated ones) hold no place; counted until the
  // response's 'close' event, which comes whether the answer went out or the client went away first
  // (onResponse does not run for a request whose client left mid-way). A request whose socket is
  // already gone is not counted: its handler answers without any work (and 'close' may be past).
  const maxInProgress = 4 * config.walletMaxInFlight;
  let inProgress = 0;
  app.addHook('preHandler', async (request, reply) => {
    if (request.routeOptions.config.phia !== true || request.raw.socket?.destroyed === true) return;
    const named = (request.body as Record<string, unknown> | undefined)?.[ACTION_FIELD];
    const action = request.routeOptions.config.action ?? (isAction(named) ? named : undefined);
    if (action === 'balance' && (overloaded() || inProgress >= maxInProgress)) {
      request.phia = { code: 'WALLET_UNAVAILABLE', action };
      return reply
        .code(503)
        .type(JSON_TYPE)
        .send(JSON.stringify(errorAnswer('WALLET_UNAVAILABLE')));
    }
    inProgress++;
    reply.raw.once('close', () => {
      inProgress--;
    });
  });

  const auth = createPhiaAuth(config);
  installJsonParser(app, { bodyLimit: config.bodyLimitBytes, onRawBody: auth.checkSignature });
  auth.install(app);

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const code = errorCodeOf(error);
    if (code === 'INTERNAL') request.log.error({ err: error }, 'unexpected error');
    else request.log.debug({ code, detail: error instanceof PhiaError ? error.detail : error.message }, 'refused');
    if (request.phia !== undefined) request.phia.code = code;
    else if (request.routeOptions.config.phia === true) request.phia = { code };
    return reply
      .code(httpStatusOf(code))
      .type(JSON_TYPE)
      .send(JSON.stringify(errorAnswer(code)));
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).type(JSON_TYPE).send(JSON.stringify(NOT_FOUND_ANSWER)));

  // In-flight PHIA requests: closing waits for them before it closes the wallet client and Redis
  // (a listening server waits for its connections anyway; this also covers inject()).
  const inFlight = new Set<FastifyRequest>();
  let idle: (() => void) | undefined;
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.phia === true) inFlight.add(request);
  });
  const settle = (request: FastifyRequest) => {
    if (inFlight.delete(request) && inFlight.size === 0) idle?.();
  };
  app.addHook('onRequestAbort', async (request) => settle(request));
  cleanups.push(async () => {
    if (inFlight.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, config.walletDeadlineMs + 2000);
      idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  });

  app.addHook('onResponse', async (request, reply) => {
    settle(request);
    const info = request.phia;
    if (request.routeOptions.config.phia !== true) {
      request.log.debug({ url: request.url, status: reply.statusCode }, 'request');
      return;
    }
    const action = info?.action ?? request.routeOptions.config.action ?? 'unknown';
    const code = info?.code ?? (reply.statusCode === 200 ? 'ok' : 'unknown');
    metrics.requests.inc({ action, status: String(reply.statusCode), code });
    metrics.requestDuration.observe({ action }, reply.elapsedTime / 1000);
    request.log.info(
      {
        action,
        tx_id: info?.tx_id,
        round_id: info?.round_id,
        status: reply.statusCode,
        code,
        replayed: info?.replayed === true ? true : undefined,
        client_ip: request.clientIp,
        duration_ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'phia request',
    );
  });

  const processor = new PhiaProcessor({
    wallet: walletClient,
    store: idempotencyStore,
    voids,
    currencies: config.currencies,
    metrics,
  });
  registerPhiaRoutes(app, processor);
  registerOpsRoutes(app, {
    store: idempotencyStore,
    wallet: walletClient,
    metrics,
    redisConfigured: redisClient !== undefined,
  });

  app.addHook('onReady', async () => {
    // Ready once Redis answers (or stayed away for 2 s): without it money requests are only settled.
    if (redisClient !== undefined) await waitForRedis(redisClient, 2000).catch(() => undefined);
    voids.start();
  });
  app.addHook('onClose', async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        app.log.warn({ err: (error as Error).message }, 'error while closing');
      }
    }
    // The logger writes asynchronously: what it buffered goes out before the app is closed.
    ownLogger?.flush();
  });
  return app;
}

/** The contract code of any error reaching the error handler. */
export function errorCodeOf(error: FastifyError | Error): ErrorCode {
  if (error instanceof PhiaError || error instanceof WalletError) return error.code;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation !== undefined) return 'INVALID_REQUEST';
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || fastifyError.statusCode === 413) return 'PAYLOAD_TOO_LARGE';
  if (fastifyError.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fastifyError.statusCode === 415) {
    return 'UNSUPPORTED_MEDIA_TYPE';
  }
  if (isErrorCode(fastifyError.code)) return fastifyError.code;
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) return 'INVALID_REQUEST';
  if (status === 503) return 'WALLET_UNAVAILABLE';
  return 'INTERNAL';
}
