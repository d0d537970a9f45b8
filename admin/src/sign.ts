/**
 * Signs a PHIA request body the way PHIA does: lowercase hex HMAC-SHA256 of the exact body bytes, sent
 * in the X-REQUEST-SIGN header. The key is the first of PHIA_SIGNING_KEYS, or else the dev key that
 * `npm start` keeps in DATA_DIR/dev-signing-key.
 */
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ACTIONS = ['balance', 'bet', 'win', 'refund'];

export function sign(key: string, body: string | Buffer): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

/** The key to sign with and where it came from, or undefined when there is none. */
export function findKey(env: NodeJS.ProcessEnv): { key: string; source: string } | undefined {
  const first = (env.PHIA_SIGNING_KEYS ?? '')
    .split(',')
    .map((key) => key.trim())
    .find((key) => key !== '');
  if (first !== undefined) return { key: first, source: 'first key of PHIA_SIGNING_KEYS' };
  const file = join(resolve(process.cwd(), env.DATA_DIR || './data'), 'dev-signing-key');
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    if (key !== '') return { key, source: file };
  }
  return undefined;
}

/** Quotes text for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The endpoint for a body and an optional action or path: a body with "action" goes to /phia. */
export function endpointFor(body: string, target: string | undefined): string | undefined {
  if (target !== undefined) {
    if (target.startsWith('/')) return target;
    if (!ACTIONS.includes(target)) throw new Error(`unknown action "${target}": use one of ${ACTIONS.join(', ')}`);
    return `/phia/${target}`;
  }
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { action?: unknown }).action === 'string') {
      return '/phia';
    }
  } catch {
    // not JSON: the caller picks the endpoint
  }
  return undefined;
}

/** The body argument: literal text, @file, or - for stdin. */
export function readBody(argument: string): string {
  if (argument === '-') return readFileSync(0, 'utf8');
  if (argument.startsWith('@')) return readFileSync(argument.slice(1), 'utf8');
  return argument;
}

/** The gateway's base URL: GATEWAY_URL, or local from GATEWAY_PORT and TLS_CERT_FILE. */
export function gatewayUrl(env: NodeJS.ProcessEnv): string {
  if (env.GATEWAY_URL) return env.GATEWAY_URL.replace(/\/+$/, '');
  return `${env.TLS_CERT_FILE ? 'https' : 'http'}://127.0.0.1:${env.GATEWAY_PORT || 8080}`;
}

/** The lines `phia-admin sign` prints: where the key came from, the header, and a curl command. */
export function signedRequest(
  body: string,
  target: string | undefined,
  env: NodeJS.ProcessEnv,
  key: { key: string; source: string },
): string[] {
  const signature = sign(key.key, body);
  const lines = [`# key: ${key.source}`, `X-REQUEST-SIGN: ${signature}`];
  let path = endpointFor(body, target);
  if (path === undefined) {
    lines.push('# no action given and the body has no "action" field: pick the endpoint (balance shown)');
    path = '/phia/balance';
  }
  const url = `${gatewayUrl(env)}${path}`;
  const insecure = /^https:\/\/(127\.0\.0\.1|localhost)[:/]/.test(url) ? ' -k' : '';
  lines.push(
    `curl -sS${insecure} -X POST ${shellQuote(url)} -H 'Content-Type: application/json' ` +
      `-H 'X-REQUEST-SIGN: ${signature}' --data-binary ${shellQuote(body)}`,
  );
  return lines;
}
