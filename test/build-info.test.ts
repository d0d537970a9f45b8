/**
 * Both services, started as an operator starts them, name their build on /metrics:
 * phia_build_info{service,version,node} 1.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePort, ManagedProcess } from './chaos/processes.js';
import { createTestSchema } from './helpers/postgres.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
t.setTimeout(120_000);

const dir = mkdtempSync(join(tmpdir(), 'phia-build-info-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const schema = await createTestSchema('build_info');
t.teardown(() => schema.drop());
const [walletPort, walletMetricsPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort()]);

function service(name: string, env: NodeJS.ProcessEnv): ManagedProcess {
  const child = new ManagedProcess({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', join(ROOT, name === 'wallet' ? 'wallet-service' : name, 'src/server.ts')],
    env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...env },
    logFile: join(dir, `${name}.log`),
  });
  t.teardown(() => child.kill('SIGTERM'));
  child.start();
  return child;
}

service('wallet', {
  DATABASE_URL: schema.databaseUrl,
  DATABASE_SCHEMA: schema.schema,
  WALLET_HOST: '127.0.0.1',
  WALLET_PORT: String(walletPort),
  WALLET_METRICS_PORT: String(walletMetricsPort),
});
service('gateway', {
  GATEWAY_HOST: '127.0.0.1',
  GATEWAY_PORT: String(gatewayPort),
  WALLET_ADDR: `127.0.0.1:${walletPort}`,
  PHIA_SIGNING_KEYS: 'k'.repeat(32),
});

/** GET url's text, retried for up to a minute while the service starts. */
async function scrape(url: string): Promise<string> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const text = await fetch(url).then(
      (res) => (res.ok ? res.text() : undefined),
      () => undefined,
    );
    if (text !== undefined) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer`);
}

for (const [name, url, workspace] of [
  ['wallet', `http://127.0.0.1:${walletMetricsPort}/metrics`, 'wallet-service'],
  ['gateway', `http://127.0.0.1:${gatewayPort}/metrics`, 'gateway'],
] as const) {
  t.test(`the ${name}'s /metrics has phia_build_info with its package version and Node.js version`, async (t) => {
    const { version } = JSON.parse(readFileSync(join(ROOT, workspace, 'package.json'), 'utf8')) as { version: string };
    const text = await scrape(url);
    t.match(text, /^# TYPE phia_build_info gauge$/m);
    const line = `phia_build_info{service="${name}",version="${version}",node="${process.version}"} 1`;
    t.ok(text.split('\n').includes(line), line);
  });
}
