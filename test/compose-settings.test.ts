/**
 * Every setting is documented, read and passed: the names each service's config.ts reads (found by
 * running it over an environment that records every read), the names .env.example documents and the
 * names docker-compose.yml passes to each service must agree, so that no setting silently does
 * nothing under compose.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../gateway/src/config.js';
import { loadWalletConfig } from '../wallet-service/src/config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** The names a config loader reads, in development and in production (some checks differ). */
function namesRead(load: (env: Record<string, string | undefined>) => unknown): Set<string> {
  const names = new Set<string>();
  for (const nodeEnv of ['development', 'production']) {
    const env = new Proxy<Record<string, string | undefined>>(
      {},
      {
        get: (_target, key) => {
          if (typeof key !== 'string') return undefined;
          names.add(key);
          return key === 'NODE_ENV' ? nodeEnv : undefined;
        },
      },
    );
    try {
      load(env);
    } catch {
      // production refuses the empty settings; every name was read by then
    }
  }
  return names;
}

const SERVICES = {
  gateway: namesRead(loadConfig),
  wallet: namesRead(loadWalletConfig),
};

type Dict = Record<string, unknown>;
const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Dict> };
const composeText = read('docker-compose.yml');
/** Names compose substitutes (${NAME...}): what an operator sets in .env for compose itself. */
const interpolated = new Set([...composeText.matchAll(/\$\{(\w+)/g)].map((match) => match[1] as string));

const documented = new Set(
  [...read('.env.example').matchAll(/^#?([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1] as string),
);

t.test('each service reads a plausible set of settings', async (t) => {
  for (const [service, names] of Object.entries(SERVICES)) {
    t.ok(names.size >= 10, `${service} reads ${names.size} settings`);
    for (const name of ['NODE_ENV', 'LOG_LEVEL', 'CURRENCIES', 'WALLET_TLS_CA_FILE']) {
      t.ok(names.has(name), `${service} reads ${name}`);
    }
  }
  t.ok(SERVICES.gateway.has('WALLET_MAX_IN_FLIGHT'), 'gateway reads WALLET_MAX_IN_FLIGHT');
  t.ok(SERVICES.wallet.has('DB_POOL_SIZE'), 'wallet reads DB_POOL_SIZE');
});

t.test('.env.example documents every setting a service reads', async (t) => {
  for (const [service, names] of Object.entries(SERVICES)) {
    for (const name of names) t.ok(documented.has(name), `${name} (read by the ${service}) is in .env.example`);
  }
});

t.test('docker-compose.yml passes every setting to the service that reads it, and no other', async (t) => {
  for (const [service, names] of Object.entries(SERVICES)) {
    const definition = compose.services[service] ?? {};
    t.equal(definition.env_file, undefined, `${service}: no env_file (a fresh clone has no .env to read)`);
    const environment = Object.keys((definition.environment as Dict | undefined) ?? {});
    for (const name of names) t.ok(environment.includes(name), `${service}: ${name} is in its environment`);
    for (const name of environment) t.ok(names.has(name), `${service}: ${name} is a setting it reads`);
  }
});

t.test('every name in .env.example is read by a service or used by docker-compose.yml', async (t) => {
  for (const name of documented) {
    const readers = Object.entries(SERVICES)
      .filter(([, names]) => names.has(name))
      .map(([service]) => service);
    t.ok(readers.length > 0 || interpolated.has(name), `${name}: read by ${readers.join(' and ') || 'compose'}`);
  }
  for (const name of interpolated) t.ok(documented.has(name), `compose's \${${name}} is in .env.example`);
});
