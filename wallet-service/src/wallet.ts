import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Server as HttpServer } from 'node:http';
import pino, { type Logger } from 'pino';
import {
  buildCurrencyTable,
  PROTO_LOADER_OPTIONS,
  startTracing,
  WALLET_PROTO_PATH,
  type CurrencyTable,
  type PhiaTracer,
  type SpanExporter,
  type TracingConfig,
  type WalletTls,
} from '@phia/proto';
import { openDatabase, type Database } from './db/index.js';
import { traceDatabase } from './db/tracing.js';
import { adminHandlers, walletHandlers } from './grpc/handlers.js';
import { Ledger, type LedgerHooks } from './ledger/ledger.js';
import { watchBooks } from './books-watch.js';
import { describeDatabaseUrl } from './logger.js';
import { instrumentDatabase, WalletMetrics } from './metrics.js';

export const WALLET_SERVICE_NAME = 'wallet.v1.Wallet';

export interface WalletServerOptions {
  host?: string;
  /** 0 picks a free port (tests). */
  port?: number;
  /** Mutual TLS: only clients with a certificate from this CA get in. Unset: plaintext. */
  tls?: WalletTls | undefined;
  /** PostgreSQL URL; unset: PGlite in dataDir (or in memory when dataDir is unset too). */
  databaseUrl?: string | undefined;
  dataDir?: string | undefined;
  schema?: string;
  /** application_name of the PostgreSQL connections (default `phia-wallet`). */
  databaseApplicationName?: string | undefined;
  poolSize?: number;
  currencies?: CurrencyTable;
  sessionTtlSeconds?: number;
  commitMarginMs?: number;
  metricsPort?: number | undefined;
  metricsHost?: string;
  logger?: Logger;
  hooks?: LedgerHooks;
  /** Process metrics (CPU, memory, event loop): on for the real server, off in tests. */
  collectDefaultMetrics?: boolean;
  /** Every this many ms, count accounts below zero into wallet_books_negative_accounts; unset or 0: off. */
  booksCheckIntervalMs?: number | undefined;
  /** How long a graceful close waits for running calls before cutting them. */
  shutdownTimeoutMs?: number;
  /** OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT); unset: off. */
  tracing?: TracingConfig;
  /** Tests: tracing on, each span exported here as it ends. */
  spanExporter?: SpanExporter;
}

export interface WalletServer {
  readonly port: number;
  /** host:port to dial. */
  readonly address: string;
  readonly ledger: Ledger;
  readonly db: Database;
  readonly metrics: WalletMetrics;
  readonly metricsPort: number | undefined;
  /** Graceful: health NOT_SERVING, stop taking calls, finish running ones, close the pool. */
  close(): Promise<void>;
  /** Abrupt: cancels running calls (simulates a crash as far as clients can tell). */
  forceClose(): Promise<void>;
}

/** The package definition reflection is built over: the wallet and the health service together. */
export function loadWalletPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync([WALLET_PROTO_PATH, healthProtoPath], PROTO_LOADER_OPTIONS);
}

function serverCredentials(tls: WalletTls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  // true: a client without a certificate signed by the CA is refused in the handshake.
  return grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

/** Adds a service whose methods answer UNAVAILABLE until `ready()` gives their handlers. */
function addUntilReady(
  server: grpc.Server,
  service: grpc.ServiceDefinition,
  ready: () => grpc.UntypedServiceImplementation | undefined,
): void {
  server.addService(
    service,
    Object.fromEntries(
      Object.keys(service).map((name) => [
        name,
        (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const handler = ready()?.[name] as grpc.handleUnaryCall<unknown, unknown> | undefined;
          if (handler !== undefined) {
            handler(call, callback);
            return;
          }
          callback({ code: grpc.status.UNAVAILABLE, details: 'wallet starting: the database is not ready' });
        },
      ]),
    ),
  );
}

export async function startWalletServer(options: WalletServerOptions = {}): Promise<WalletServer> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const metrics = new WalletMetrics(options.collectDefaultMetrics === true);
  const packageDefinition = loadWalletPackageDefinition();
  const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
    wallet: { v1: { Wallet: grpc.ServiceClientConstructor; Admin: grpc.ServiceClientConstructor } };
  };

  // Health starts NOT_SERVING and turns SERVING once the database is ready.
  const health = new HealthImplementation({ '': 'NOT_SERVING', [WALLET_SERVICE_NAME]: 'NOT_SERVING' });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 });
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);
  // The services are there from the first moment the port is open, answering UNAVAILABLE until the
  // ledger is ready (callers then retry or void, as for a wallet that is down), never UNIMPLEMENTED,
  // which a gateway must take for a fault of its own.
  const started: { wallet?: grpc.UntypedServiceImplementation; admin?: grpc.UntypedServiceImplementation } = {};
  addUntilReady(server, loaded.wallet.v1.Wallet.service, () => started.wallet);
  addUntilReady(server, loaded.wallet.v1.Admin.service, () => started.admin);

  const host = options.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.port ?? 0}`, serverCredentials(options.tls), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });

  let db: Database;
  try {
    db = await openDatabase({
      databaseUrl: options.databaseUrl,
      dataDir: options.dataDir,
      schema: options.schema,
      poolSize: options.poolSize,
      applicationName: options.databaseApplicationName,
    });
  } catch (error) {
    server.forceShutdown();
    throw error;
  }
  logger.info(
    db.kind === 'postgres'
      ? { database: describeDatabaseUrl(options.databaseUrl ?? ''), schema: db.schema }
      : { database: 'PGlite (embedded)', dataDir: options.dataDir ?? 'in memory' },
    db.kind === 'postgres' ? 'ledger on PostgreSQL' : 'ledger on embedded PGlite: no DATABASE_URL set',
  );

  let tracer: PhiaTracer;
  try {
    tracer = await startTracing(
      options.tracing ?? { endpoint: undefined, serviceName: 'phia-wallet' },
      options.spanExporter === undefined ? {} : { exporter: options.spanExporter },
    );
  } catch (error) {
    server.forceShutdown();
    await db.close();
    throw error;
  }
  metrics.observePool(db);
  // SQL spans (tracing on): outside the metrics' wrapper, so a span covers what the metric times.
  const ledger = new Ledger(traceDatabase(instrumentDatabase(db, metrics), tracer), {
    currencies: options.currencies ?? buildCurrencyTable(),
    defaultSessionTtlSeconds: options.sessionTtlSeconds,
    commitMarginMs: options.commitMarginMs,
    hooks: options.hooks,
  });
  started.wallet = walletHandlers(ledger, { logger, metrics, tracer });
  started.admin = adminHandlers(ledger, { logger, metrics, tracer });
  health.setStatus('', 'SERVING');
  health.setStatus(WALLET_SERVICE_NAME, 'SERVING');
  const stopBooksCheck =
    options.booksCheckIntervalMs !== undefined && options.booksCheckIntervalMs > 0
      ? watchBooks(ledger, metrics, options.booksCheckIntervalMs, logger)
      : undefined;

  let metricsServer: HttpServer | undefined;
  if (options.metricsPort !== undefined) {
    metricsServer = await metrics.serve(options.metricsHost ?? host, options.metricsPort);
  }
  const metricsAddress = metricsServer?.address();

  let closing: Promise<void> | undefined;
  const closeRest = async () => {
    stopBooksCheck?.();
    await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
    await db.close();
    await tracer.shutdown();
  };

  return {
    port,
    address: `${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`,
    ledger,
    db,
    metrics,
    metricsPort: typeof metricsAddress === 'object' && metricsAddress ? metricsAddress.port : undefined,
    close() {
      closing ??= (async () => {
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(WALLET_SERVICE_NAME, 'NOT_SERVING');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, options.shutdownTimeoutMs ?? 10_000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        await closeRest();
      })();
      return closing;
    },
    forceClose() {
      closing ??= (async () => {
        server.forceShutdown();
        await closeRest();
      })();
      return closing;
    },
  };
}
