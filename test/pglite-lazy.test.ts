/**
 * PGlite, the development ledger, is loaded only when used: the wallet on PostgreSQL starts and
 * answers with PGlite made unresolvable (as in the production image, whose `npm ci --omit=dev` leaves
 * this development dependency out), and without DATABASE_URL it says what is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { freePort, ManagedProcess } from './chaos/processes.js';
import { createTestSchema } from './helpers/postgres.js';
import { waitForWallet, walletTestClient } from './helpers/wallet-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER = join(ROOT, 'wallet-service/dist/server.js');
t.setTimeout(120_000);

const dir = mkdtempSync(join(tmpdir(), 'phia-pglite-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
// A module hook that refuses @electric-sql/pglite as if it were not installed.
writeFileSync(
  join(dir, 'hooks.mjs'),
  `export async function resolve(specifier, context, next) {
  if (specifier === '@electric-sql/pglite' || specifier.startsWith('@electric-sql/pglite/')) {
    const error = new Error("Cannot find package '" + specifier + "' (left out by the test)");
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}
`,
);
writeFileSync(
  join(dir, 'no-pglite.mjs'),
  `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
);
const withoutPglite = ['--import', join(dir, 'no-pglite.mjs'), SERVER];

t.test('the wallet on PostgreSQL never loads PGlite', async (t) => {
  const schema = await createTestSchema('no_pglite');
  t.teardown(() => schema.drop());
  const port = await freePort();
  const wallet = new ManagedProcess({
    name: 'wallet',
    command: process.execPath,
    args: withoutPglite,
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: schema.databaseUrl,
      DATABASE_SCHEMA: schema.schema,
      WALLET_HOST: '127.0.0.1',
      WALLET_PORT: String(port),
      WALLET_METRICS_PORT: '0',
      LOG_LEVEL: 'warn',
    },
    logFile: join(dir, 'wallet.log'),
  });
  t.teardown(() => wallet.close());
  wallet.start();
  const client = walletTestClient(`127.0.0.1:${port}`);
  t.teardown(() => client.close());
  await waitForWallet(client);
  const deposit = await client.Deposit({ tx_id: 'lazy-dep', user_id: 'lazy', currency: 'USD', amount: '1.00' });
  t.match(deposit, { balance: '1.00' }, 'money moves on PostgreSQL');
  t.same(wallet.unexpectedExits, [], 'still running');
  t.notMatch(readFileSync(join(dir, 'wallet.log'), 'utf8'), /pglite/i);
});

t.test('without DATABASE_URL and without PGlite, the wallet says what is missing', async (t) => {
  const run = spawnSync(process.execPath, withoutPglite, {
    env: { PATH: process.env.PATH, DATA_DIR: dir, WALLET_PORT: '0', WALLET_METRICS_PORT: '0', LOG_LEVEL: 'warn' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(run.status, 1, 'exits 1');
  t.match(
    run.stderr,
    /wallet failed to start: DATABASE_URL is unset and PGlite, the development ledger, is not installed/,
  );
});

t.test('PGlite is a development dependency: the production image (npm ci --omit=dev) leaves it out', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'wallet-service/package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  t.notOk('@electric-sql/pglite' in pkg.dependencies, 'not a production dependency');
  t.ok(pkg.devDependencies?.['@electric-sql/pglite'], 'a development dependency (npm ci and npm start have it)');
  t.match(
    readFileSync(join(ROOT, 'wallet-service/Dockerfile'), 'utf8'),
    /^RUN npm ci --omit=dev --workspace wallet-service\b/m,
    'the runtime stage installs production dependencies only',
  );
});
