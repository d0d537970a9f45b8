/**
 * Admission control against the real wallet, PostgreSQL and Redis: past WALLET_MAX_IN_FLIGHT wallet
 * calls a request is answered 503 WALLET_UNAVAILABLE at once, stored for its duplicates and voided
 * (rule 5); a request whose deadline (counted from its arrival) is already gone is answered 504
 * without a wallet call, and voided too. Past ADMISSION_FACTOR x WALLET_MAX_IN_FLIGHT requests in
 * progress, new ones are refused before any store or wallet work: a balance 503, a money request by
 * closing its connection unanswered; the same while the event loop is slowed past
 * GATEWAY_MAX_EVENT_LOOP_DELAY_MS.
 */
import t, { type Test } from 'tap';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { ADMISSION_FACTOR, CONNECTIONS_FACTOR } from '../../gateway/src/plugins/app/admission.js';
import { signBody } from '../../gateway/src/auth/signature.js';
import { startGateway } from '../../gateway/src/server.js';
import { PhiaProcessor } from '../../gateway/src/phia/processor.js';
import { expectError, json, post, quietLogger, TEST_KEY, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack, until, holdAccount } from '../helpers/gateway-stack.js';

const stack = await startStack({
  label: 'gw_admit',
  env: { WALLET_MAX_IN_FLIGHT: '1', WALLET_DEADLINE_MS: '3000' },
});
t.teardown(() => stack.close());

async function storedStatus(kind: string, txId: string): Promise<string> {
  try {
    return ((await stack.admin.GetTransaction({ kind, tx_id: txId })) as { status: string }).status;
  } catch {
    return 'none';
  }
}

t.test('past WALLET_MAX_IN_FLIGHT: 503 at once, stored for duplicates, voided, never applied', async (t) => {
  const held = uid('held');
  const other = uid('other');
  await stack.fund(held, 'USD', '50');
  await stack.fund(other, 'USD', '50');
  const lock = await holdAccount(stack, held);

  // The first bet waits in the wallet for the account lock: one wallet call in flight.
  let firstDone = false;
  const first = stack.post('/phia/bet', moneyBody({ user_id: held, amount: '10' })).then((res) => {
    firstDone = true;
    return res;
  });
  t.ok(await until(() => stack.app.wallet.inFlight === 1), 'the first bet is in flight');

  const bet = moneyBody({ user_id: other, amount: '7' });
  const refused = await stack.post('/phia/bet', bet);
  expectError(t, refused, 503, 'WALLET_UNAVAILABLE', 'unavailable');
  t.equal(firstDone, false, 'answered while the first call was still in flight (not queued behind it)');
  t.equal(stack.app.wallet.inFlight, 1);
  const balanceRefused = await stack.post('/phia/balance', { user_id: other, currency: 'USD' });
  expectError(t, balanceRefused, 503, 'WALLET_UNAVAILABLE', 'unavailable', 'a balance is refused too');

  const duplicate = await stack.post('/phia/bet', bet);
  t.equal(duplicate.statusCode, 503, 'a duplicate gets the same answer');
  t.equal(duplicate.body, refused.body);

  await lock.release();
  const firstRes = await first;
  t.equal(firstRes.statusCode, 200, 'the bet in flight completes normally');

  t.ok(await until(async () => (await stack.app.voids.pendingCount()) === 0, 5000), 'the void was delivered');
  t.not(await storedStatus('bet', bet.tx_id as string), 'applied', 'the refused bet never applied');
  t.equal(await stack.balance(other, 'USD'), '50.00');
  t.equal(await stack.balance(held, 'USD'), '40.00');
  t.equal(await storedStatus('bet', bet.tx_id as string), 'voided', 'S: tombstoned before the 503 left');

  // Once the call in flight is done, requests go through again.
  const after = await stack.post('/phia/bet', moneyBody({ user_id: other, amount: '1' }));
  t.equal(after.statusCode, 200);
  t.equal(json(after).balance, '49.00');
});

t.test('the deadline counts from arrival: already gone, 504 without a wallet call, voided', async (t) => {
  const user = uid('late');
  await stack.fund(user, 'USD', '20');
  const { wallet, store, voids, config } = stack.app;
  const processor = new PhiaProcessor({
    wallet,
    store,
    voids,
    currencies: config.currencies,
  });
  const bet = moneyBody({ user_id: user, amount: '5' });
  const answer = await processor.money('bet', bet as never, {
    requestId: uid('req'),
    log: quietLogger(),
    // Arrived a whole deadline ago (it waited in the gateway's queues): no time left for the wallet.
    arrivedAt: Date.now() - config.walletDeadlineMs - 1,
  });
  t.equal(answer.status, 504);
  t.equal(answer.code, 'WALLET_TIMEOUT');
  t.ok(await until(async () => (await voids.pendingCount()) === 0, 5000), 'the void was delivered');
  t.not(await storedStatus('bet', bet.tx_id as string), 'applied');
  t.equal(await stack.balance(user, 'USD'), '20.00');
  const duplicate = await stack.post('/phia/bet', bet);
  t.equal(duplicate.statusCode, 504, 'a duplicate gets the first answer');

  // With time left (arrived just now) the same path reaches the wallet.
  const fresh = moneyBody({ user_id: user, amount: '5' });
  const ok = await processor.money('bet', fresh as never, {
    requestId: uid('req'),
    log: quietLogger(),
    arrivedAt: Date.now(),
  });
  t.equal(ok.status, 200);
  t.equal(await stack.balance(user, 'USD'), '15.00');
});

t.test('the wallet client refuses a call whose deadline is gone before making it', async (t) => {
  const { wallet } = stack.app;
  await t.rejects(wallet.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt: Date.now() - 60_000 }), {
    code: 'WALLET_TIMEOUT',
    decidedByWallet: false,
  });
});

t.test('answered requests leave the in-progress count (bound: ADMISSION_FACTOR x WALLET_MAX_IN_FLIGHT)', async (t) => {
  const user = uid('seq');
  await stack.fund(user, 'USD', '20');
  for (let i = 0; i < 12; i++) {
    const res = await stack.post('/phia/balance', { user_id: user, currency: 'USD' });
    t.equal(res.statusCode, 200, `request ${i + 1} of 12, one at a time`);
  }
});

/** Opens and closes a TCP connection: 'connected', or the error code of the refusal. */
function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** A signed POST over a real connection: its answer, or `closed` when the connection closed without one. */
function postOverHttp(
  url: string,
  path: string,
  body: unknown,
  agent: Agent | false = false,
): Promise<{ status: number; body: string } | 'closed'> {
  const payload = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = httpRequest(
      `${url}${path}`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'x-request-sign': signBody(TEST_KEY, payload) },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', () => resolve('closed'));
    req.end(payload);
  });
}

/** A gateway of its own on 127.0.0.1, on the stack's wallet and Redis. */
function ownGateway() {
  return startGateway({
    config: { ...stack.config, host: '127.0.0.1', port: 0 },
    keyPrefix: stack.keyPrefix,
    logger: quietLogger(),
    defaultMetrics: false,
  });
}

/**
 * Fills the gateway's two places: a bet waiting in the wallet for its account's lock, and its copy
 * waiting for it (R4). Releasing the lock lets both through.
 */
async function fillGateway(t: Test, gateway: Awaited<ReturnType<typeof ownGateway>>, label: string) {
  const held = uid(label);
  await stack.fund(held, 'USD', '50');
  const lock = await holdAccount(stack, held);
  const bet = moneyBody({ user_id: held, amount: '10' });
  const first = postOverHttp(gateway.url, '/phia/bet', bet);
  t.ok(await until(() => gateway.app.wallet.inFlight === 1), 'the first bet is in the wallet');
  const copy = postOverHttp(gateway.url, '/phia/bet', bet);
  t.ok(await until(() => gateway.app.admission.inProgress === 2), 'the copy waits: the gateway is full');
  return { first, copy, lock };
}

t.test(
  'full (ADMISSION_FACTOR x WALLET_MAX_IN_FLIGHT in progress): the listener closed, new connections refused by the kernel; on open ones a money request is closed unanswered, a balance gets 503; nothing reaches the store or the wallet; listening again once a place frees',
  async (t) => {
    t.equal(ADMISSION_FACTOR, 2, 'two places per wallet call: here 2');
    const gateway = await ownGateway();
    t.teardown(() => gateway.close());
    const other = uid('refused');
    await stack.fund(other, 'USD', '50');
    // One keep-alive connection opened while there is room.
    const open = new Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => open.destroy());
    const warm = await postOverHttp(gateway.url, '/phia/balance', { user_id: other, currency: 'USD' }, open);
    t.ok(warm !== 'closed' && warm.status === 200, 'a balance while there is room');
    const { first, copy, lock } = await fillGateway(t, gateway, 'full');

    const refusedBet = moneyBody({ user_id: other, amount: '7' });
    t.equal(await connectError(gateway.port), 'ECONNREFUSED', 'a new connection: refused by the kernel at once');
    t.equal(await postOverHttp(gateway.url, '/phia/bet', refusedBet), 'closed', 'a bet on a new connection: no answer');
    // A connection opened while there was room: its requests are refused by the admission hook.
    const balance = await postOverHttp(gateway.url, '/phia/balance', { user_id: other, currency: 'USD' }, open);
    t.not(balance, 'closed');
    if (balance !== 'closed') {
      t.equal(balance.status, 503, 'a balance: 503');
      t.same(JSON.parse(balance.body), { error: 'wallet unavailable', code: 'WALLET_UNAVAILABLE' });
    }
    t.equal(
      await postOverHttp(gateway.url, '/phia/bet', refusedBet, open),
      'closed',
      'a bet on the open connection: closed, no answer',
    );
    t.equal(await storedStatus('bet', refusedBet.tx_id as string), 'none', 'the refused bet never reached the wallet');
    t.equal(await stack.redis?.exists(`${stack.keyPrefix}lock:bet:${String(refusedBet.tx_id)}`), 0, 'nor the store');
    const metrics = (await gateway.app.inject({ method: 'GET', url: '/metrics' })).body;
    t.match(metrics, /phia_admission_refusals_total\{action="bet",answer="closed"\} 1/);
    t.match(metrics, /phia_admission_refusals_total\{action="balance",answer="503"\} 1/);

    await lock.release();
    const [firstRes, copyRes] = await Promise.all([first, copy]);
    t.same([firstRes !== 'closed' && firstRes.status, copyRes !== 'closed' && copyRes.status], [200, 200]);
    t.equal(gateway.app.admission.inProgress, 0, 'both left the count');
    t.ok(await until(async () => (await connectError(gateway.port)) === 'connected'), 'listening again on its port');
    const after = await postOverHttp(gateway.url, '/phia/bet', refusedBet);
    t.ok(after !== 'closed' && after.status === 200, 'the same bet is taken once there is room');
    t.equal(await stack.balance(other, 'USD'), '43.00');
  },
);

t.test(
  'closed while full: the gateway does not listen again, and its requests in progress still get their answers',
  async (t) => {
    const gateway = await ownGateway();
    const { first, copy, lock } = await fillGateway(t, gateway, 'shut');
    t.equal(await connectError(gateway.port), 'ECONNREFUSED', 'the listener is closed');
    const closed = gateway.close();
    await lock.release();
    const answers = await Promise.all([first, copy]);
    t.same(
      answers.map((answer) => answer !== 'closed' && answer.status),
      [200, 200],
      'both answered',
    );
    await closed;
    t.equal(await connectError(gateway.port), 'ECONNREFUSED', 'still refused after the close: not listening again');
    t.equal(gateway.app.server.listening, false);
  },
);

t.test(
  'full on several addresses (a host name such as localhost): new connections closed at accept, the listener kept',
  async (t) => {
    const gateway = await ownGateway();
    t.teardown(() => gateway.close());
    // Fastify's secondary servers (localhost as 127.0.0.1 and ::1) close with the main one; this
    // machine's localhost may have one address, so the gateway is told of a second one.
    const address = gateway.app.addresses()[0] as AddressInfo;
    (gateway.app as { addresses: () => AddressInfo[] }).addresses = () => [address, { ...address, address: '::1' }];
    const other = uid('multi-other');
    await stack.fund(other, 'USD', '50');
    const { first, copy, lock } = await fillGateway(t, gateway, 'multi');
    t.equal(await connectError(gateway.port), 'connected', 'the listener stays');
    const refused = moneyBody({ user_id: other, amount: '7' });
    t.equal(await postOverHttp(gateway.url, '/phia/bet', refused), 'closed', 'a new connection: closed at accept');
    await lock.release();
    await Promise.all([first, copy]);
    const after = await postOverHttp(gateway.url, '/phia/bet', refused);
    t.ok(after !== 'closed' && after.status === 200, 'served again once a place frees');
  },
);

t.test('past CONNECTIONS_FACTOR x WALLET_MAX_IN_FLIGHT open connections, a new one is closed at accept', async (t) => {
  const gateway = await ownGateway();
  t.teardown(() => gateway.close());
  const cap = CONNECTIONS_FACTOR * stack.config.walletMaxInFlight;
  const idle: Socket[] = [];
  t.teardown(() => idle.forEach((socket) => socket.destroy()));
  for (let i = 0; i < cap; i++) {
    idle.push(
      await new Promise<Socket>((resolve) => {
        const socket = connect(gateway.port, '127.0.0.1', () => resolve(socket));
      }),
    );
  }
  t.ok(
    await until(
      async () =>
        (await new Promise<number>((resolve) => gateway.app.server.getConnections((_e, n) => resolve(n)))) === cap,
    ),
    `${cap} idle connections open`,
  );
  t.equal(
    await postOverHttp(gateway.url, '/phia/balance', { user_id: 'u', currency: 'USD' }),
    'closed',
    'one more: closed',
  );
  idle.pop()?.destroy();
  t.ok(
    await until(
      async () => (await postOverHttp(gateway.url, '/phia/balance', { user_id: 'u', currency: 'USD' })) !== 'closed',
    ),
    'answered once one closed',
  );
});

t.test('an event loop slowed for two windows in a row: new requests refused; then served again', async (t) => {
  const app = await stack.newApp({}, { GATEWAY_MAX_EVENT_LOOP_DELAY_MS: '15' });
  const user = uid('loop');
  await stack.fund(user, 'USD', '50');
  const balance = () => post(app, '/phia/balance', { user_id: user, currency: 'USD' });
  t.equal((await balance()).statusCode, 200, 'served while the loop is idle');
  t.equal(app.overloaded(), false);

  // Busy slices of 40 ms, yielding between them: every timer of the loop runs about 40 ms late,
  // but the loop still turns (a loop blocked outright takes no samples, and sheds nothing).
  let busy = true;
  const slices = (async () => {
    while (busy) {
      const end = Date.now() + 40;
      while (Date.now() < end);
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  const loaded = await until(() => app.overloaded(), 5000);
  const refused = loaded ? await balance() : undefined;
  busy = false;
  await slices;
  t.ok(loaded, 'overloaded after two slow windows');
  t.equal(refused?.statusCode, 503, 'a balance is refused before any wallet call');
  t.match(refused?.json(), { code: 'WALLET_UNAVAILABLE' });
  t.ok(await until(() => !app.overloaded(), 5000), 'no longer overloaded once the loop is quick again');
  t.equal((await balance()).statusCode, 200, 'served again');
});
