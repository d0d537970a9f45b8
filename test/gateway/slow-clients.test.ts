/**
 * Slow clients against a real gateway process (signature+ip, 127.0.0.1 allowed): connections that
 * send a bet's headers and one byte of its body, then stall, hold no place in the gateway's admission
 * count, and are answered 408 and closed once the receive budget (RECEIVE_TIMEOUT_MS) is spent.
 */
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort, ManagedProcess } from '../chaos/processes.js';
import { RECEIVE_CHECK_INTERVAL_MS, RECEIVE_TIMEOUT_MS } from '../../gateway/src/app.js';
import { signBody } from '../../gateway/src/auth/signature.js';
import { TEST_KEY, uid } from '../../gateway/src/test-helpers/index.js';
import { startStack, until } from '../helpers/gateway-stack.js';

const SLOW_CONNECTIONS = 300;
const SERVER = fileURLToPath(new URL('../../gateway/src/server.ts', import.meta.url));

const stack = await startStack({ label: 'gw_slow', redis: false });
t.teardown(() => stack.close());

const port = await freePort();
const gateway = new ManagedProcess({
  name: 'gateway',
  command: process.execPath,
  args: ['--import', 'tsx', SERVER],
  env: {
    PATH: process.env.PATH,
    NODE_ENV: 'test',
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    WALLET_ADDR: stack.wallet.address,
    PHIA_AUTH_MODE: 'signature+ip',
    PHIA_SIGNING_KEYS: TEST_KEY,
    PHIA_ALLOWED_IPS: '127.0.0.1,::1',
    // The default WALLET_MAX_IN_FLIGHT (64): at most 256 PHIA requests in progress, fewer than 300.
    // Shed only on a loop stalled for a second (a loaded test machine), as the other tests do.
    GATEWAY_MAX_EVENT_LOOP_DELAY_MS: '1000',
    LOG_LEVEL: 'warn',
  },
  logFile: join(tmpdir(), `phia-gw-slow-${process.pid}.log`),
});
t.teardown(() => gateway.close());
gateway.start();
t.ok(
  await until(
    () =>
      fetch(`http://127.0.0.1:${port}/healthz`).then(
        (res) => res.ok,
        () => false,
      ),
    30_000,
  ),
  'the gateway process is up',
);

interface Slow {
  socket: Socket;
  sentAt: number;
  closedAt?: number;
  received: string;
}

/** Opens a connection that sends a bet's headers (content-length 2000) and one body byte, then stalls. */
function openSlow(): Promise<Slow> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const slow: Slow = { socket, sentAt: 0, received: '' };
    socket.on('data', (chunk: Buffer) => (slow.received += chunk.toString('latin1')));
    socket.on('close', () => (slow.closedAt = Date.now()));
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.write(
        'POST /phia/bet HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n' +
          `content-length: 2000\r\nx-request-sign: ${'0'.repeat(64)}\r\n\r\n{`,
        () => {
          slow.sentAt = Date.now();
          resolve(slow);
        },
      );
    });
    socket.once('error', reject);
  });
}

/** A signed balance request over a connection of its own, its body written in `parts` `pauseMs` apart. */
async function signedBalance(user: string, parts = 1, pauseMs = 0): Promise<{ status: number; body: string }> {
  const body = JSON.stringify({ user_id: user, currency: 'USD' });
  const head =
    'POST /phia/balance HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nconnection: close\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\nx-request-sign: ${signBody(TEST_KEY, body)}\r\n\r\n`;
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  const size = Math.ceil(body.length / parts);
  socket.write(head);
  for (let i = 0; i < parts; i++) {
    if (i > 0) await sleep(pauseMs);
    socket.write(body.slice(i * size, (i + 1) * size));
  }
  await Promise.race([closed, sleep(15_000)]);
  socket.destroy();
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
  return { status, body: received.slice(received.indexOf('\r\n\r\n') + 4) };
}

t.test(
  `${SLOW_CONNECTIONS} stalled bodies from an allowed address: signed requests are still answered, the stalled ones are closed within the receive budget`,
  { timeout: 90_000 },
  async (t) => {
    const user = uid('slow');
    await stack.fund(user, 'USD', '12.5');

    const slow: Slow[] = [];
    for (let i = 0; i < SLOW_CONNECTIONS; i += 50) {
      slow.push(...(await Promise.all(Array.from({ length: 50 }, () => openSlow()))));
    }
    const openedAt = Date.now();
    // Let the gateway read every stalled request's headers (each one reaches its onRequest hooks).
    await sleep(500);
    t.equal(slow.filter((each) => each.closedAt !== undefined).length, 0, 'the stalled connections are still open');

    const answers: { status: number; body: string }[] = [];
    while (Date.now() - openedAt < RECEIVE_TIMEOUT_MS - 2000 || answers.length < 5) {
      answers.push(await signedBalance(user));
      await sleep(200);
    }
    const refused = answers.filter((answer) => answer.status !== 200);
    t.equal(refused.length, 0, `${answers.length} signed balance requests while the connections stalled, all 200`, {
      refused: refused.slice(0, 3),
    });
    t.same(JSON.parse(answers[0]?.body ?? '{}'), { balance: '12.50', currency: 'USD' });

    const split = await signedBalance(user, 2, 1000);
    t.equal(split.status, 200, `a body that arrives in two parts 1 s apart is not cut (${split.body})`);

    // Closed by the gateway: 408, no earlier than the budget, and within it plus Node's check interval
    // (and a margin for a loaded machine).
    const latest = RECEIVE_TIMEOUT_MS + RECEIVE_CHECK_INTERVAL_MS + 3000;
    const allClosed = await until(
      () => slow.every((each) => each.closedAt !== undefined),
      latest - (Date.now() - openedAt) + 2000,
    );
    for (const each of slow) each.socket.destroy();
    t.ok(
      allClosed,
      `every stalled connection was closed (${slow.filter((each) => each.closedAt).length} of ${slow.length})`,
    );
    const heldFor = slow.map((each) => (each.closedAt ?? Infinity) - each.sentAt);
    t.ok(
      heldFor.every((ms) => ms >= RECEIVE_TIMEOUT_MS - 100 && ms <= latest),
      `held ${Math.min(...heldFor)} to ${Math.max(...heldFor)} ms (budget ${RECEIVE_TIMEOUT_MS} ms)`,
    );
    t.equal(
      slow.filter((each) => each.received.startsWith('HTTP/1.1 408 ')).length,
      slow.length,
      'each was answered 408 Request Timeout',
    );

    const after = await signedBalance(user);
    t.equal(after.status, 200, 'the gateway answers as before afterwards');
    t.equal(gateway.unexpectedExits.length, 0, 'the gateway process never exited');
  },
);
