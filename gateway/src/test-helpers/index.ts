/** Helpers for the gateway's tests (excluded from the build). */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Env, type GatewayConfig } from '../config.js';
import { signBody } from '../auth/signature.js';
import { createLogger } from '../logger.js';

export const TEST_KEY = 'test-key-0123456789abcdef';
export const OTHER_KEY = 'other-key-fedcba9876543210';

/** A configuration for tests: signature+ip with TEST_KEY and localhost, silent logs. */
export function testConfig(env: Env = {}): GatewayConfig {
  return loadConfig({
    NODE_ENV: 'test',
    PHIA_SIGNING_KEYS: TEST_KEY,
    PHIA_ALLOWED_IPS: '127.0.0.1,::1',
    WALLET_ADDR: '127.0.0.1:1',
    WALLET_DEADLINE_MS: '1000',
    LOG_LEVEL: 'silent',
    ...env,
  });
}

export const quietLogger = () => createLogger('silent');

/** A random Redis key prefix, so test runs never share keys. */
export function randomPrefix(): string {
  return `phia-test:${randomBytes(6).toString('hex')}:`;
}

export interface PostOptions {
  /** Signing key; `null` sends no signature header. Default TEST_KEY. */
  key?: string | null;
  /** Overrides the computed signature. */
  signature?: string;
  headers?: Record<string, string>;
  remoteAddress?: string;
  contentType?: string;
}

/** POSTs `body` (an object is JSON.stringify'd; a string or Buffer is sent as is), signed. */
export function post(app: FastifyInstance, url: string, body: unknown, options: PostOptions = {}) {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const key = options.key === undefined ? TEST_KEY : options.key;
  const headers: Record<string, string> = {
    'content-type': options.contentType ?? 'application/json',
    ...options.headers,
  };
  if (options.signature !== undefined) headers['x-request-sign'] = options.signature;
  else if (key !== null) headers['x-request-sign'] = signBody(key, payload);
  return app.inject({
    method: 'POST',
    url,
    payload,
    headers,
    ...(options.remoteAddress === undefined ? {} : { remoteAddress: options.remoteAddress }),
  });
}

let counter = 0;
/** A unique id for tx_id, user_id, round_id in one run. */
export function uid(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}-${randomBytes(3).toString('hex')}`;
}
