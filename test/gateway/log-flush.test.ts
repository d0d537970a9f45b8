/**
 * The gateway buffers its log lines for stdout; a quiet gateway still writes each line within
 * about a second, not when the buffer happens to fill. A real gateway process on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePort } from '../chaos/processes.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
t.setTimeout(120_000);

t.test('one request on a quiet gateway: its log line reaches stdout while the gateway runs', async (t) => {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'gateway/src/server.ts')], {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info', GATEWAY_HOST: '127.0.0.1', GATEWAY_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const until = async (check: () => boolean | Promise<boolean>, what: string) => {
    for (const started = Date.now(); !(await check()); await sleep(100)) {
      if (Date.now() - started > 60_000 || child.exitCode !== null) throw new Error(`${what}: ${output.slice(-2000)}`);
    }
  };
  await until(
    () =>
      fetch(`${url}/healthz`).then(
        (res) => res.ok,
        () => false,
      ),
    'the gateway did not start',
  );

  const answer = await fetch(`${url}/phia/bet`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'quiet-1' },
    body: '{}',
  });
  t.equal(answer.status, 401, 'unsigned: refused');
  await until(() => output.includes('"reqId":"quiet-1"'), 'no log line');
  const line = JSON.parse(output.split('\n').find((l) => l.includes('"reqId":"quiet-1"')) as string);
  t.match(line, { msg: 'phia request', status: 401, code: 'INVALID_SIGNATURE', reqId: 'quiet-1' });
  t.equal(child.exitCode, null, 'written while the gateway still runs');
});
