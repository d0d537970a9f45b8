/**
 * An error nobody caught (an exception, or a rejected promise) in a running service: it is logged at
 * fatal level, the service closes gracefully as on SIGTERM, and exits 1 so its supervisor starts a
 * fresh process. Real processes on 127.0.0.1; the error comes from a preload that throws on SIGWINCH.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePort } from './chaos/processes.js';
import { createTestSchema } from './helpers/postgres.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PRELOAD = join(ROOT, 'test/fixtures/crash-on-sigwinch.mjs');

t.setTimeout(180_000);

const schema = await createTestSchema('fatal');
t.teardown(() => schema.drop());

interface Outcome {
  code: number | null;
  lines: Array<{ level?: number; msg?: string; err?: { message?: string } }>;
}

/** Starts `entry`, waits until `ready`, sends SIGWINCH, and collects its log until it exits. */
async function crash(
  entry: string,
  env: Record<string, string>,
  ready: (output: string) => Promise<boolean>,
): Promise<Outcome> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', PRELOAD, join(ROOT, entry)], {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  for (const started = Date.now(); !(await ready(output)); await sleep(100)) {
    if (Date.now() - started > 60_000 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`${entry} did not start: ${output.slice(-2000)}`);
    }
  }
  child.kill('SIGWINCH');
  const code = await Promise.race([exited, sleep(30_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    child.kill('SIGKILL');
    throw new Error(`${entry} did not exit: ${output.slice(-2000)}`);
  }
  const lines = output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Outcome['lines'][number]);
  return { code, lines };
}

interface Service {
  entry: string;
  env: Record<string, string>;
  ready(output: string): Promise<boolean>;
  closed: RegExp;
}

const services: Record<string, () => Promise<Service>> = {
  async gateway() {
    const port = await freePort();
    return {
      entry: 'gateway/src/server.ts',
      env: { GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: String(port), NODE_ENV: 'test' },
      ready: () =>
        fetch(`http://127.0.0.1:${port}/healthz`).then(
          (res) => res.ok,
          () => false,
        ),
      closed: /^closed$/,
    };
  },
  async wallet() {
    return {
      entry: 'wallet-service/src/server.ts',
      env: {
        WALLET_PORT: String(await freePort()),
        WALLET_METRICS_PORT: '0',
        DATABASE_URL: schema.databaseUrl,
        DATABASE_SCHEMA: schema.schema,
      },
      ready: async (output) => /wallet listening/.test(output),
      closed: /^wallet stopped$/,
    };
  },
};

for (const [name, make] of Object.entries(services)) {
  for (const kind of ['throw', 'reject'] as const) {
    t.test(
      `${name}: an uncaught ${kind === 'throw' ? 'exception' : 'rejection'} is logged, closes, exits 1`,
      async (t) => {
        const service = await make();
        const { code, lines } = await crash(service.entry, { ...service.env, CRASH_KIND: kind }, service.ready);
        t.equal(code, 1, 'exit code 1 for the supervisor');
        const fatal = lines.find((line) => line.level === 60);
        t.match(
          fatal,
          { msg: 'uncaught error: closing, then exiting', err: { message: /^injected/ } },
          'logged at fatal',
        );
        t.ok(
          lines.some((line) => service.closed.test(line.msg ?? '')),
          'closed gracefully before exiting',
        );
      },
    );
  }
}
