/** Helpers for the gateway's tests (excluded from the build). */
import { randomBytes } from 'node:crypto';
import type t from 'tap';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Value } from '@sinclair/typebox/value';
import { ErrorAnswer } from '../phia/contract.js';
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
    // Test processes share a loaded machine: shed only on a loop stalled for a second, as before.
    GATEWAY_MAX_EVENT_LOOP_DELAY_MS: '1000',
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

export function json(res: LightMyRequestResponse): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** The assertions used by expectError (a subtest or the root test). */
export type Asserts = Pick<typeof t, 'equal' | 'match' | 'ok'>;

/** Asserts an error answer: status, code, the message words PHIA acts on, exactly {error, code}. */
export function expectError(
  t: Asserts,
  res: LightMyRequestResponse,
  status: number,
  code: string,
  contains: string,
  what = code,
): void {
  t.equal(res.statusCode, status, `${what}: status ${status} (${res.body})`);
  let body: Record<string, unknown> = {};
  try {
    body = json(res);
  } catch {
    t.ok(false, `${what}: answer is JSON`);
  }
  t.equal(body.code, code, `${what}: code`);
  t.match(body.error, contains, `${what}: message contains "${contains}"`);
  t.ok(Value.Check(ErrorAnswer, body), `${what}: error answer has exactly {error, code}`);
  t.match(res.headers['content-type'], /^application\/json/, `${what}: JSON content type`);
}

/** A standard money body for tests. */
export function moneyBody(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    user_id: 'u',
    currency: 'USD',
    tx_id: uid('tx'),
    round_id: uid('round'),
    game_session_id: 'gs-1',
    game_id: 'crash',
    amount: '1.00',
    ...fields,
  };
}
