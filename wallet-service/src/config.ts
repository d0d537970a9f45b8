import { join } from 'node:path';
import {
  buildCurrencyTable,
  isLoopbackHost,
  readTracingConfig,
  readWalletTls,
  type CurrencyTable,
  type TracingConfig,
  type WalletTls,
} from '@phia/proto';

export interface WalletConfig {
  host: string;
  port: number;
  databaseUrl: string | undefined;
  /** PGlite's folder when databaseUrl is unset. */
  dataDir: string;
  schema: string;
  /** application_name of the wallet's PostgreSQL connections (pg_stat_activity). */
  databaseApplicationName: string;
  poolSize: number;
  currencies: CurrencyTable;
  metricsPort: number | undefined;
  sessionTtlSeconds: number;
  /** Period of the negative-balance check (wallet_books_negative_accounts); 0: off. */
  booksCheckSeconds: number;
  logLevel: string;
  production: boolean;
  /** Mutual TLS on the gRPC port; undefined: plaintext. */
  tls: WalletTls | undefined;
  /** OpenTelemetry: on when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  tracing: TracingConfig;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid wallet configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Reads and validates the wallet's environment once; every problem is reported, not just the first. */
export function loadWalletConfig(env: NodeJS.ProcessEnv = process.env): WalletConfig {
  const problems: string[] = [];
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!/^[0-9]+$/.test(raw) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };

  const databaseUrl = env.DATABASE_URL === '' ? undefined : env.DATABASE_URL;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const schema = env.DATABASE_SCHEMA || 'wallet';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) problems.push('DATABASE_SCHEMA must be a lowercase SQL identifier');
  let currencies: CurrencyTable = buildCurrencyTable();
  try {
    currencies = buildCurrencyTable(env.CURRENCIES);
  } catch (error) {
    problems.push(`CURRENCIES: ${(error as Error).message}`);
  }
  const databaseApplicationName = env.DATABASE_APPLICATION_NAME || 'phia-wallet';
  if (!/^[\x20-\x7e]{1,63}$/.test(databaseApplicationName)) {
    problems.push('DATABASE_APPLICATION_NAME must be 1 to 63 printable ASCII characters');
  }
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.has(logLevel)) problems.push(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}`);
  const metricsPort = integer('WALLET_METRICS_PORT', 9464, 0, 65535);
  let tracing: TracingConfig = { endpoint: undefined, serviceName: 'phia-wallet' };
  try {
    tracing = readTracingConfig(env, 'phia-wallet');
  } catch (error) {
    problems.push((error as Error).message);
  }

  const config: WalletConfig = {
    // It moves money: loopback unless the operator opens it, with mutual TLS in production.
    host: env.WALLET_HOST || '127.0.0.1',
    port: integer('WALLET_PORT', 50051, 0, 65535),
    databaseUrl,
    dataDir: join(env.DATA_DIR || './data', 'wallet-pglite'),
    schema,
    databaseApplicationName,
    poolSize: integer('DB_POOL_SIZE', 16, 1, 200),
    currencies,
    metricsPort: metricsPort === 0 ? undefined : metricsPort,
    sessionTtlSeconds: integer('SESSION_TTL_SECONDS', 3600, 1, 7 * 24 * 3600),
    booksCheckSeconds: integer('WALLET_BOOKS_CHECK_SECONDS', 60, 0, 86400),
    logLevel,
    production: env.NODE_ENV === 'production',
    tls: readWalletTls(env, problems),
    tracing,
  };
  if (config.production && databaseUrl === undefined) {
    problems.push('DATABASE_URL is required in production (PGlite is for development only)');
  }
  if (config.production && config.tls === undefined && !isLoopbackHost(config.host)) {
    problems.push(
      `WALLET_HOST=${config.host} is reachable beyond this machine: in production set WALLET_TLS_CA_FILE, WALLET_TLS_CERT_FILE and WALLET_TLS_KEY_FILE (mutual TLS), or listen on 127.0.0.1`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
