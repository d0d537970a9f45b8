/**
 * The gateway's settings, read from the environment variables of contract section 8 and validated
 * once at start-up. Every problem is reported (one clear line each) in a single ConfigError.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  buildCurrencyTable,
  isLoopbackHost,
  readTracingConfig,
  readWalletTls,
  type CurrencyTable,
  type TracingConfig,
  type WalletTls,
} from '@phia/proto';
import { isWide, isWildcard, parseIpList, WIDEST_PREFIX, type IpRule } from './auth/ip.js';
import { parseRedisUrl } from './redis.js';

export const AUTH_MODES = ['signature', 'ip', 'signature+ip'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Upper bound of WALLET_DEADLINE_MS: a duplicate may wait the deadline plus a margin, all well under PHIA's 6 s. */
export const MAX_WALLET_DEADLINE_MS = 4500;

/** Shortest signing key accepted in production: HMAC-SHA256's own output size (32 bytes). */
export const MIN_PRODUCTION_KEY_BYTES = 32;

export interface GatewayConfig {
  host: string;
  port: number;
  /** host:port of the wallet's gRPC server. */
  walletAddr: string;
  /** Mutual TLS to the wallet; undefined: plaintext. */
  walletTls: WalletTls | undefined;
  /** Unset: in-process idempotency store and void queue (one gateway only). */
  redisUrl: string | undefined;
  authMode: AuthMode;
  /** HMAC keys; any one may match. Empty only in `ip` mode. */
  signingKeys: string[];
  /** Set when no key was configured outside production: the generated key, for the caller to print. */
  generatedDevKey: string | undefined;
  /** The allowlist after preset expansion. Empty only in `signature` mode. */
  allowedIps: IpRule[];
  trustProxy: IpRule[];
  walletDeadlineMs: number;
  /** Wallet calls (balance and money) in flight at most; beyond it a request is answered 503 at once. */
  walletMaxInFlight: number;
  /** Event-loop delay (ms) above which requests are shed with 503 WALLET_UNAVAILABLE (0: never). */
  maxEventLoopDelayMs: number;
  idempotencyTtlSeconds: number;
  bodyLimitBytes: number;
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  production: boolean;
  logLevel: LogLevel;
  currencies: CurrencyTable;
  /** OpenTelemetry: on when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  tracing: TracingConfig;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid gateway configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Reads and validates the configuration; throws ConfigError listing every problem. */
export function loadConfig(env: Env = process.env): GatewayConfig {
  const problems: string[] = [];
  const production = env.NODE_ENV === 'production';
  const text = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const value = text(name);
    if (value === undefined) return fallback;
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
      return fallback;
    }
    return Number(value);
  };

  const host = text('GATEWAY_HOST') ?? '0.0.0.0';
  const port = integer('GATEWAY_PORT', 8080, 0, 65535);

  const walletAddr = text('WALLET_ADDR') ?? '127.0.0.1:50051';
  if (
    !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/.test(walletAddr) ||
    Number(walletAddr.split(':').pop()) > 65535
  ) {
    problems.push(`WALLET_ADDR must be host:port (e.g. 127.0.0.1:50051), got "${walletAddr}"`);
  }

  const redisUrl = text('REDIS_URL');
  if (redisUrl !== undefined) {
    try {
      parseRedisUrl(redisUrl);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }

  const { authMode, signingKeys, generatedDevKey, allowedIps, trustProxy } = readAuth(text, production, problems);

  const walletDeadlineMs = integer('WALLET_DEADLINE_MS', 2000, 50, MAX_WALLET_DEADLINE_MS);
  const walletMaxInFlight = integer('WALLET_MAX_IN_FLIGHT', 64, 1, 100_000);
  const maxEventLoopDelayMs = integer('GATEWAY_MAX_EVENT_LOOP_DELAY_MS', 100, 0, 60_000);
  const idempotencyTtlSeconds = integer('IDEMPOTENCY_TTL_SECONDS', 86400, 1, 365 * 86400);
  const bodyLimitBytes = integer('PHIA_BODY_LIMIT_BYTES', 16 * 1024, 1024, 1024 * 1024);

  const tlsCertFile = text('TLS_CERT_FILE');
  const tlsKeyFile = text('TLS_KEY_FILE');
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    problems.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together');
  }
  for (const [name, file] of [
    ['TLS_CERT_FILE', tlsCertFile],
    ['TLS_KEY_FILE', tlsKeyFile],
  ] as const) {
    if (file !== undefined && !existsSync(file)) problems.push(`${name}: file not found: ${file}`);
  }

  const levelText = text('LOG_LEVEL') ?? 'info';
  let logLevel: LogLevel = 'info';
  if ((LOG_LEVELS as readonly string[]).includes(levelText)) logLevel = levelText as LogLevel;
  else problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${levelText}"`);

  let currencies: CurrencyTable = buildCurrencyTable();
  try {
    currencies = buildCurrencyTable(env.CURRENCIES);
  } catch (error) {
    problems.push(`CURRENCIES: ${(error as Error).message}`);
  }
  const walletTls = readWalletTls(env, problems);
  let tracing: TracingConfig = { endpoint: undefined, serviceName: 'phia-gateway' };
  try {
    tracing = readTracingConfig(env, 'phia-gateway');
  } catch (error) {
    problems.push((error as Error).message);
  }
  const walletHost = walletAddr.slice(0, walletAddr.lastIndexOf(':'));
  if (production && walletTls === undefined && !isLoopbackHost(walletHost)) {
    problems.push(
      `WALLET_ADDR=${walletAddr} is another machine: in production set WALLET_TLS_CA_FILE, WALLET_TLS_CERT_FILE and WALLET_TLS_KEY_FILE (mutual TLS)`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    host,
    port,
    walletAddr,
    walletTls,
    redisUrl,
    authMode,
    signingKeys,
    generatedDevKey,
    allowedIps,
    trustProxy,
    walletDeadlineMs,
    walletMaxInFlight,
    maxEventLoopDelayMs,
    idempotencyTtlSeconds,
    bodyLimitBytes,
    tlsCertFile,
    tlsKeyFile,
    production,
    logLevel,
    currencies,
    tracing,
  };
}

type AuthConfig = Pick<GatewayConfig, 'authMode' | 'signingKeys' | 'generatedDevKey' | 'allowedIps' | 'trustProxy'>;

/** The authentication settings (contract section 3), with production's stricter checks. */
function readAuth(text: (name: string) => string | undefined, production: boolean, problems: string[]): AuthConfig {
  const allowWideRangesText = text('PHIA_ALLOW_WIDE_RANGES') ?? 'false';
  if (allowWideRangesText !== 'true' && allowWideRangesText !== 'false') {
    problems.push(`PHIA_ALLOW_WIDE_RANGES must be true or false, got "${allowWideRangesText}"`);
  }
  const allowWideRanges = allowWideRangesText === 'true';
  // Production: a range wider than /8 or /32 (e.g. 0.0.0.0/1 + 128.0.0.0/1, every address in two
  // halves) is almost surely a mistake; PHIA_ALLOW_WIDE_RANGES=true says it is not.
  const wideRanges = (name: string, rules: readonly IpRule[]): void => {
    const wide = rules.filter(isWide).map((rule) => rule.text);
    if (wide.length === 0) return;
    problems.push(
      `${name}: ${wide.join(', ')} ${wide.length === 1 ? 'is' : 'are'} wider than /${WIDEST_PREFIX.ipv4} (IPv4) or /${WIDEST_PREFIX.ipv6} (IPv6); ` +
        'in production set PHIA_ALLOW_WIDE_RANGES=true if that is intended',
    );
  };

  // Signing keys: never echoed in messages.
  const configuredKeys = (text('PHIA_SIGNING_KEYS') ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key !== '');
  const configuredIps = text('PHIA_ALLOWED_IPS');

  const modeText = text('PHIA_AUTH_MODE');
  let authMode: AuthMode = 'signature+ip';
  if (modeText !== undefined) {
    if ((AUTH_MODES as readonly string[]).includes(modeText)) authMode = modeText as AuthMode;
    else problems.push(`PHIA_AUTH_MODE must be one of ${AUTH_MODES.join(', ')}, got "${modeText}"`);
  } else {
    // Default: both checks where both are configured (or neither: the defaults), else the one that is.
    if (configuredKeys.length > 0 && configuredIps === undefined) authMode = 'signature';
    else if (configuredKeys.length === 0 && configuredIps !== undefined) {
      authMode = 'ip';
      // An allowlist without a key would drop the signature check without anyone choosing it.
      if (production) {
        problems.push(
          'PHIA_ALLOWED_IPS is set without PHIA_SIGNING_KEYS: in production set PHIA_AUTH_MODE=ip to ' +
            'accept requests on the allowlist alone (no signature check), or set PHIA_SIGNING_KEYS',
        );
      }
    }
  }
  const wantsSignature = authMode !== 'ip';
  const wantsIp = authMode !== 'signature';

  if (production && wantsSignature) {
    configuredKeys.forEach((key, index) => {
      if (Buffer.byteLength(key, 'utf8') < MIN_PRODUCTION_KEY_BYTES) {
        problems.push(
          `PHIA_SIGNING_KEYS: key ${index + 1} of ${configuredKeys.length} is shorter than ` +
            `${MIN_PRODUCTION_KEY_BYTES} bytes, too short for production (generate one with \`openssl rand -hex 32\`)`,
        );
      }
    });
  }

  let signingKeys = configuredKeys;
  let generatedDevKey: string | undefined;
  if (wantsSignature && signingKeys.length === 0) {
    if (production) {
      problems.push(`PHIA_SIGNING_KEYS is required in production with PHIA_AUTH_MODE=${authMode}`);
    } else {
      generatedDevKey = randomBytes(32).toString('hex');
      signingKeys = [generatedDevKey];
    }
  }

  let allowedIps: IpRule[] = [];
  if (wantsIp) {
    if (configuredIps !== undefined) {
      allowedIps = parseIpList(configuredIps, problems, 'PHIA_ALLOWED_IPS');
      if (allowedIps.length === 0 && !problems.some((problem) => problem.startsWith('PHIA_ALLOWED_IPS'))) {
        problems.push('PHIA_ALLOWED_IPS lists no address');
      }
    } else if (production) {
      problems.push(`PHIA_ALLOWED_IPS is required in production with PHIA_AUTH_MODE=${authMode}`);
    } else {
      allowedIps = parseIpList('127.0.0.1,::1', problems, 'PHIA_ALLOWED_IPS');
    }
    if (production && allowedIps.some(isWildcard)) {
      problems.push('PHIA_ALLOWED_IPS must not allow every address (*, 0.0.0.0/0, ::/0) in production');
    } else if (production && !allowWideRanges) wideRanges('PHIA_ALLOWED_IPS', allowedIps);
  }

  const trustProxy = parseIpList(text('TRUST_PROXY') ?? '', problems, 'TRUST_PROXY');
  if (production && trustProxy.some(isWildcard)) {
    problems.push('TRUST_PROXY must not trust every address in production');
  } else if (production && !allowWideRanges) wideRanges('TRUST_PROXY', trustProxy);

  return { authMode, signingKeys, generatedDevKey, allowedIps, trustProxy };
}
