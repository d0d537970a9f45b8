/** Entry point: the wallet alone, configured from the environment (contract section 8). */
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
    metricsPort: config.metricsPort,
    metricsHost: config.host,
    collectDefaultMetrics: true,
    logger,
  });
  logger.info(
    { grpc: `${config.host}:${wallet.port}`, tls: config.tls !== undefined, metrics: wallet.metricsPort ?? 'off' },
    `wallet listening on ${config.host}:${wallet.port}`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'wallet shutting down: finishing running calls');
    wallet.close().then(
      () => {
        logger.info('wallet stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'wallet shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error('wallet failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
