#!/usr/bin/env node
/**
 * Signs a PHIA request body the way PHIA does: lowercase hex HMAC-SHA256 of the exact body bytes,
 * sent in the X-REQUEST-SIGN header. Prints the signature and a ready-to-paste curl command.
 *
 *   node scripts/sign.js '<json body>' [action|path]
 *   node scripts/sign.js @body.json bet
 *   echo '{"user_id":"u1","currency":"USD"}' | node scripts/sign.js - balance
 *
 * The action (balance, bet, win, refund) picks the endpoint /phia/<action>; a body with an "action"
 * field goes to the single endpoint /phia. The key is the first of PHIA_SIGNING_KEYS, or else the dev
 * key that `npm start` keeps in DATA_DIR/dev-signing-key (DATA_DIR defaults to ./data). The base URL
 * is GATEWAY_URL, or else built from GATEWAY_PORT and TLS_CERT_FILE like the gateway's own.
 * With --sig-only, prints only the signature.
 */
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ACTIONS = ['balance', 'bet', 'win', 'refund'];

/** Lowercase hex HMAC-SHA256 of body (a string, taken as UTF-8, or a Buffer). */
export function sign(key, body) {
  return createHmac('sha256', key).update(body).digest('hex');
}

/** The key to sign with: PHIA_SIGNING_KEYS' first key, else DATA_DIR/dev-signing-key. */
export function findKey(env = process.env) {
  const first = (env.PHIA_SIGNING_KEYS ?? '')
    .split(',')
    .map((key) => key.trim())
    .find((key) => key !== '');
  if (first) return { key: first, source: 'PHIA_SIGNING_KEYS' };
  const file = join(resolve(process.cwd(), env.DATA_DIR || './data'), 'dev-signing-key');
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    if (key) return { key, source: file };
  }
  return undefined;
}

/** Quotes text for a POSIX shell. */
export function shellQuote(text) {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The endpoint path for a body and an optional action or path argument. */
export function endpointFor(body, target) {
  if (target) {
    if (target.startsWith('/')) return target;
    if (!ACTIONS.includes(target)) throw new Error(`unknown action "${target}": use one of ${ACTIONS.join(', ')}`);
    return `/phia/${target}`;
  }
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed === 'object' && typeof parsed.action === 'string') return '/phia';
  return undefined;
}

function baseUrl(env) {
  if (env.GATEWAY_URL) return env.GATEWAY_URL.replace(/\/+$/, '');
  const scheme = env.TLS_CERT_FILE ? 'https' : 'http';
  return `${scheme}://127.0.0.1:${env.GATEWAY_PORT || 8080}`;
}

function readBody(argument) {
  if (argument === '-') return readFileSync(0, 'utf8');
  if (argument.startsWith('@')) return readFileSync(argument.slice(1), 'utf8');
  return argument;
}

function main(argv) {
  const sigOnly = argv.includes('--sig-only');
  const args = argv.filter((arg) => arg !== '--sig-only');
  if (args.length < 1 || args[0] === '-h' || args[0] === '--help') {
    console.error("usage: node scripts/sign.js '<json body>' | @file | - [balance|bet|win|refund|/path] [--sig-only]");
    return 2;
  }
  const body = readBody(args[0]);
  const found = findKey();
  if (!found) {
    console.error('no key: set PHIA_SIGNING_KEYS, or run `npm start` once to create DATA_DIR/dev-signing-key');
    return 1;
  }
  const signature = sign(found.key, body);
  if (sigOnly) {
    console.log(signature);
    return 0;
  }
  let path;
  try {
    path = endpointFor(body, args[1]);
  } catch (error) {
    console.error(error.message);
    return 2;
  }
  console.log(`# key: ${found.source === 'PHIA_SIGNING_KEYS' ? 'first key of PHIA_SIGNING_KEYS' : found.source}`);
  console.log(`X-REQUEST-SIGN: ${signature}`);
  if (!path) {
    console.log('# no action given and the body has no "action" field: pick the endpoint (balance shown)');
    path = '/phia/balance';
  }
  const url = `${baseUrl(process.env)}${path}`;
  const insecure = url.startsWith('https://127.0.0.1') || url.startsWith('https://localhost') ? ' -k' : '';
  console.log(
    `curl -sS${insecure} -X POST ${shellQuote(url)} -H 'Content-Type: application/json' ` +
      `-H 'X-REQUEST-SIGN: ${signature}' --data-binary ${shellQuote(body)}`,
  );
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
