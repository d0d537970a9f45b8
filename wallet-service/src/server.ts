/** Entry point: the wallet alone, configured from the environment (contract section 8). */
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadWalletConfig } from './config.js';
import { createLogger } from './logger.js';
import { startWalletServer } from './wallet.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadWalletConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const wallet = await startWalletServer({
    host: config.host,
    port: config.port,
    tls: config.tls,
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    schema: config.schema,
    databaseApplicationName: config.databaseApplicationName,
    poolSize: config.poolSize,
    currencies: config.currencies,
    sessionTtlSeconds: config.sessionTtlSeconds,
    booksCheckIntervalMs: config.booksCheckSeconds * 1000,
    metricsPort: config.metricsPort,
    metricsHost: config.host,
    tracing: config.tracing,
    collectDefaultMetrics: true,
    logger,
  });
  logger.info(
    { grpc: `${config.host}:${wallet.port}`, tls: config.tls !== undefined, metrics: wallet.metricsPort ?? 'off' },
    `wallet listening on ${config.host}:${wallet.port}`,
  );

  // SIGTERM and SIGINT close gracefully (running calls finish, exit 0). An uncaught error closes the
  // same way (health turns NOT_SERVING), then exits 1 so the supervisor starts a fresh process.
  closeWithGrace({ delay: 15_000, logger: { error: (message) => logger.error(message) } }, async ({ signal, err }) => {
    if (err !== undefined) logger.fatal({ err }, 'uncaught error: closing, then exiting');
    else logger.info({ signal }, 'wallet shutting down: finishing running calls');
    await wallet.close();
    logger.info('wallet stopped');
  });
}

main().catch((error: unknown) => {
  console.error('wallet failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
