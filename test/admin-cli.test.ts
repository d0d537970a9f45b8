/**
 * phia-admin against a real wallet process on 127.0.0.1, over the wallet link's mutual TLS: a
 * transaction with its entries, an account and its status, the books check (also when it finds a
 * problem), and the exit codes for people and scripts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { freePort, ManagedProcess } from './chaos/processes.js';
import { createTestSchema } from './helpers/postgres.js';
import { waitForWallet, walletTestClient } from './helpers/wallet-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ADMIN = join(ROOT, 'admin/bin/phia-admin.js');

t.setTimeout(180_000);

const dir = mkdtempSync(join(tmpdir(), 'phia-admin-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
if (spawnSync('sh', [join(ROOT, 'ops/wallet-tls/dev-ca.sh'), dir]).status !== 0) throw new Error('dev-ca.sh failed');
const schema = await createTestSchema('admin');
t.teardown(() => schema.drop());

const port = await freePort();
const address = `127.0.0.1:${port}`;
const wallet = new ManagedProcess({
  name: 'wallet',
  command: process.execPath,
  args: ['--import', 'tsx', join(ROOT, 'wallet-service/src/server.ts')],
  env: {
    PATH: process.env.PATH,
    DATABASE_URL: schema.databaseUrl,
    DATABASE_SCHEMA: schema.schema,
    WALLET_HOST: '127.0.0.1',
    WALLET_PORT: String(port),
    WALLET_METRICS_PORT: '0',
    WALLET_TLS_CA_FILE: join(dir, 'ca.pem'),
    WALLET_TLS_CERT_FILE: join(dir, 'wallet.pem'),
    WALLET_TLS_KEY_FILE: join(dir, 'wallet.key'),
    LOG_LEVEL: 'warn',
  },
  logFile: join(dir, 'wallet.log'),
});
t.teardown(() => wallet.kill('SIGTERM'));
wallet.start();

/** The environment an operator's shell has: the wallet's address and the gateway's certificate. */
const operatorEnv = {
  PATH: process.env.PATH ?? '',
  WALLET_ADDR: address,
  WALLET_TLS_CA_FILE: join(dir, 'ca.pem'),
  WALLET_TLS_CERT_FILE: join(dir, 'gateway.pem'),
  WALLET_TLS_KEY_FILE: join(dir, 'gateway.key'),
};

function admin(args: string[], env: Record<string, string> = operatorEnv) {
  const run = spawnSync(process.execPath, [ADMIN, ...args], { env, encoding: 'utf8', timeout: 30_000 });
  return { code: run.status, out: run.stdout, err: run.stderr };
}

const client = walletTestClient(
  address,
  grpc.credentials.createSsl(
    readFileSync(join(dir, 'ca.pem')),
    readFileSync(join(dir, 'gateway.key')),
    readFileSync(join(dir, 'gateway.pem')),
  ),
);
t.teardown(() => client.close());
await waitForWallet(client);

const user = `admin-${process.pid}`;
await client.Deposit({ tx_id: `${user}-dep`, user_id: user, currency: 'USD', amount: '100.00' });
const bet = { user_id: user, currency: 'USD', amount: '2.50', round_id: 'r1', game_session_id: 'g1' };
await client.Bet({ ...bet, tx_id: `${user}-bet` });

t.test('tx show: the stored outcome and the entries it booked', async (t) => {
  const json = admin(['tx', 'show', 'bet', `${user}-bet`, '--json']);
  t.equal(json.code, 0, json.err);
  const shown = JSON.parse(json.out) as { transaction: Record<string, string>; entries: Record<string, string>[] };
  t.match(shown.transaction, { kind: 'bet', status: 'applied', amount: '2.50', balance: '97.50' });
  t.same(
    shown.entries.map((entry) => [entry.account, entry.amount]),
    [
      ['player', '-2.50'],
      ['house', '2.50'],
    ],
    'the player paid the house',
  );
  const human = admin(['tx', 'show', 'bet', `${user}-bet`]);
  t.match(human.out, /^status: +applied$/m);
  t.match(human.out, /entries:\naccount +user_id +currency +amount +created_at\nplayer +admin-/);
  const missing = admin(['tx', 'show', 'bet', 'no-such-tx']);
  t.equal(missing.code, 1, 'not found: exit 1');
  t.match(missing.err, /ACCOUNT_NOT_FOUND/);
});

t.test('account show, block and unblock', async (t) => {
  t.match(JSON.parse(admin(['account', 'show', user, 'USD', '--json']).out), { balance: '97.50', blocked: false });
  const blocked = admin(['account', 'block', user, 'USD']);
  t.equal(blocked.code, 0, blocked.err);
  t.match(blocked.out, /^blocked: +true$/m);
  await t.rejects(
    client.Bet({ ...bet, tx_id: `${user}-bet2` }),
    { code: 'PLAYER_BLOCKED' },
    'a blocked player cannot bet',
  );
  t.match(admin(['account', 'unblock', user, 'USD']).out, /^blocked: +false$/m);
  t.equal(admin(['account', 'show', 'nobody', 'USD']).code, 1, 'no account: exit 1');
});

t.test('books check: exit 0 when they balance, 1 with the problem listed when not', async (t) => {
  const good = admin(['books', 'check']);
  t.equal(good.code, 0, good.err);
  t.match(good.out, /the books balance/);
  // A balance changed behind the ledger's back, as a bad manual fix would.
  await schema.pool.query(`UPDATE accounts SET balance = balance + 1 WHERE owner_kind = 'player' AND user_id = $1`, [
    user,
  ]);
  t.teardown(() =>
    schema.pool.query(`UPDATE accounts SET balance = balance - 1 WHERE owner_kind = 'player' AND user_id = $1`, [user]),
  );
  const bad = admin(['books', 'check', '--json']);
  t.equal(bad.code, 1, 'exit 1');
  t.match(JSON.parse(bad.out), {
    balanced: false,
    drifted_accounts: [{ user_id: user, currency: 'USD', balance: '98.5', entries: '97.5' }],
  });
  t.match(admin(['books', 'check']).out, /balances that are not the sum of their entries:/);
});

t.test('exit codes: 2 for usage, 3 when the wallet is out of reach or the link is refused', async (t) => {
  t.equal(admin(['tx', 'show', 'bet']).code, 2, 'missing argument');
  t.equal(admin(['frobnicate']).code, 2, 'unknown command');
  t.equal(admin(['books', 'check', '--jsonn']).code, 2, 'unknown option');
  const plaintext = admin(['books', 'check'], { PATH: operatorEnv.PATH, WALLET_ADDR: address });
  t.equal(plaintext.code, 3, 'without the certificate the wallet refuses the link');
  const closed = admin(['books', 'check'], { ...operatorEnv, WALLET_ADDR: `127.0.0.1:${await freePort()}` });
  t.equal(closed.code, 3, 'nothing listening');
});
