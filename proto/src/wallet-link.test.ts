import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { isLoopbackHost, readWalletTls } from './wallet-link.js';

const DEV_CA = fileURLToPath(new URL('../../ops/wallet-tls/dev-ca.sh', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'phia-link-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
for (const name of ['a', 'b']) {
  const run = spawnSync('sh', [DEV_CA, join(dir, name)], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
}
const files = (ca: string, cert: string, key: string) => ({
  WALLET_TLS_CA_FILE: join(dir, ca),
  WALLET_TLS_CERT_FILE: join(dir, cert),
  WALLET_TLS_KEY_FILE: join(dir, key),
});
const read = (env: Record<string, string>) => {
  const problems: string[] = [];
  return { tls: readWalletTls(env, problems), problems };
};

t.test('all three files make the link TLS; none leaves it plaintext', async (t) => {
  const { tls, problems } = read(files('a/ca.pem', 'a/wallet.pem', 'a/wallet.key'));
  t.same(problems, []);
  t.ok(tls?.ca.toString().includes('BEGIN CERTIFICATE'));
  t.same(read({}), { tls: undefined, problems: [] });
  t.same(read({ WALLET_TLS_CA_FILE: '' }), { tls: undefined, problems: [] }, 'empty counts as unset');
});

t.test('each problem names its variable, never a file content', async (t) => {
  t.match(read({ WALLET_TLS_CA_FILE: join(dir, 'a/ca.pem') }).problems, [
    /^WALLET_TLS_CERT_FILE and WALLET_TLS_KEY_FILE must be set too/,
  ]);
  t.match(read(files('a/ca.pem', 'a/missing.pem', 'a/wallet.key')).problems, [
    /^WALLET_TLS_CERT_FILE: cannot read .*missing\.pem \(ENOENT\)$/,
  ]);
  writeFileSync(join(dir, 'not-pem'), 'hello');
  t.match(read(files('not-pem', 'a/wallet.pem', 'a/wallet.key')).problems, [
    /^WALLET_TLS_CA_FILE: .* is not a PEM file$/,
  ]);
  const mismatch = read(files('a/ca.pem', 'a/wallet.pem', 'b/wallet.key'));
  t.equal(mismatch.tls, undefined);
  t.match(mismatch.problems, [/^WALLET_TLS_\*: the files do not make a TLS identity/]);
  t.notMatch(mismatch.problems.join(), /BEGIN/, 'no key material in the message');
});

t.test('loopback hosts', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) t.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'wallet', '128.0.0.1']) t.notOk(isLoopbackHost(host), host);
});
