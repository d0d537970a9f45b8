/**
 * Cells of docs/idempotency.md through the real processes (two gateways sharing a Redis the test
 * kills, the wallet stopped with SIGSTOP/SIGCONT, PostgreSQL): the failures that the table closes.
 * Gateway 0 reaches the wallet through a link the test can cut (a TCP relay), gateway 1 directly.
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { WalletCallError } from '../helpers/wallet-client.js';
import { codeOf, pendingVoidsIn, post, sign, type Reply } from './phia-client.js';
import { freePort } from './processes.js';
import { ChaosStack, waitFor } from './stack.js';

const WALLET_DEADLINE_MS = 2000;

/**
 * A relay to the wallet for gateway 0. `cutAfterNextReply`: the next bytes the wallet sends are
 * dropped and the link goes dead both ways (the wallet did the work, its answer is lost) until `heal`.
 */
class WalletLink {
  readonly #sockets = new Set<Socket>();
  #dead = false;
  #armed = false;
  port = 0;

  async start(target: () => number): Promise<void> {
    this.port = await freePort();
    const server = createServer((client) => {
      if (this.#dead) return client.destroy();
      const wallet = connect(target(), '127.0.0.1');
      for (const socket of [client, wallet]) {
        this.#sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => this.#sockets.delete(socket));
      }
      client.on('data', (chunk: Buffer) => {
        if (!this.#dead) wallet.write(chunk);
      });
      wallet.on('data', (chunk: Buffer) => {
        if (this.#armed) [this.#armed, this.#dead] = [false, true];
        if (!this.#dead) client.write(chunk);
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    t.teardown(() => {
      this.heal();
      server.close();
    });
  }

  cutAfterNextReply(): void {
    this.#armed = true;
  }

  /** Live again: the gateway's broken connections are closed, so that it reconnects. */
  heal(): void {
    this.#dead = false;
    for (const socket of this.#sockets) socket.destroy();
  }
}

const link = new WalletLink();
const stack = new ChaosStack({
  runId: `cells${randomBytes(4).toString('hex')}`,
  walletDeadlineMs: WALLET_DEADLINE_MS,
  gateways: 2,
  redisPersistence: 'aof',
  gatewayWalletAddr: (index) => (index === 0 ? `127.0.0.1:${link.port}` : undefined),
});
await link.start(() => stack.walletPort);
await stack.start();
t.teardown(() => stack.close({ dropSchema: true }));

function send(gateway: number, action: 'bet' | 'win', fields: Record<string, string>): Promise<Reply> {
  const body = JSON.stringify({ currency: 'USD', ...fields });
  return post(`${stack.gatewayUrl(gateway)}/phia/${action}`, body, sign(stack.signingKey, body), 15_000);
}

async function admin<T>(call: (client: ReturnType<ChaosStack['admin']>) => Promise<T>): Promise<T> {
  const client = stack.admin();
  try {
    return await call(client);
  } finally {
    client.close();
  }
}

/** The ledger's status of a transaction, or 'absent'. */
async function stored(kind: string, txId: string): Promise<string> {
  try {
    return (await admin((client) => client.GetTransaction({ kind, tx_id: txId }))).status ?? '';
  } catch (error) {
    if (error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND') return 'absent';
    throw error;
  }
}

async function player(name: string, amount: string) {
  const user = `${stack.runId}-${name}`;
  await admin((client) => client.Deposit({ tx_id: `${user}-dep`, user_id: user, currency: 'USD', amount }));
  const balance = async () => (await admin((client) => client.GetBalance({ user_id: user, currency: 'USD' }))).balance;
  const bet = (tx: string, amount = '2.00') => ({
    user_id: user,
    game_session_id: `${user}-gs`,
    round_id: `${user}-${tx}-r`,
    tx_id: `${user}-${tx}`,
    amount,
  });
  return { user, balance, bet };
}

async function redisDown(): Promise<void> {
  await stack.redis.kill('SIGKILL');
  t.teardown(async () => {
    if (!stack.redis.running) await stack.startRedis();
  });
}

async function voidsDrained(): Promise<void> {
  await waitFor('void queues', 20_000, async () => {
    for (let i = 0; i < stack.gateways.length; i++) {
      const text = await (await fetch(`${stack.gatewayUrl(i)}/metrics`)).text();
      if (pendingVoidsIn(text) !== 0) return false;
    }
    return true;
  });
}

t.test('S, gap E: a win whose answer was lost is reversed before its error leaves, never spent', async (t) => {
  const p = await player('gap-e', '0.01');
  t.equal((await send(0, 'bet', p.bet('warm', '0.00'))).status, 200, 'gateway 0 reaches the wallet');
  const win = { ...p.bet('win', '10.00') };
  // The wallet commits the win; its answer is lost and gateway 0's link stays dead for 3 s.
  link.cutAfterNextReply();
  const sent = Date.now();
  const healed = sleep(3000).then(() => link.heal());
  const answer = await send(0, 'win', win);
  t.not(answer.status, 200, `the win is answered with an error (${answer.status} ${codeOf(answer)})`);
  // The player bets at once through the other gateway, as PHIA may after an error.
  const bets = await Promise.all([1, 2, 3, 4, 5].map((n) => send(1, 'bet', p.bet(`b${n}`))));
  await healed;
  t.ok(Date.now() - sent < 6000, 'answered within PHIA budget');
  for (const [n, bet] of bets.entries()) t.not(bet.status, 200, `bet ${n + 1} is not paid from the win`);
  await voidsDrained();
  t.equal(await stored('win', win.tx_id), 'voided', 'the win is reversed');
  t.equal(await p.balance(), '0.01', 'the balance is the deposit alone');
  const metrics = await (await fetch(`${stack.gatewayUrl(0)}/metrics`)).text();
  t.notMatch(metrics, /^phia_voids_unappliable_total\{[^}]*\} [1-9]/m, 'no void was refused');
  t.equal((await send(1, 'win', win)).body, answer.body, 'a copy gets the first answer');
});

t.test(
  'red-team 1, N: a bet one gateway answered 504 (then died) is never applied by a copy to the other',
  async (t) => {
    const p = await player('rt1', '100.00');
    const bet = p.bet('bet', '10.00');
    t.equal((await send(1, 'bet', p.bet('warm', '0.00'))).status, 200);
    stack.wallet.pause();
    t.teardown(() => stack.wallet.resume());
    const first = send(0, 'bet', bet);
    await sleep(500);
    await redisDown(); // while gateway 0 waits for the wallet: its void cannot reach Redis
    const answer = await first;
    t.ok([503, 504].includes(answer.status ?? 0), `gateway 0 answers an error (${answer.status} ${codeOf(answer)})`);
    // Gateway 0 dies with whatever it kept in memory; the wallet wakes up.
    await stack.gateways[0]!.kill('SIGKILL');
    t.teardown(() => stack.heal());
    stack.wallet.resume();
    // At once, through the other gateway, Redis still down.
    const copies = await Promise.all([send(1, 'bet', bet), sleep(300).then(() => send(1, 'bet', bet))]);
    for (const copy of copies) t.not(copy.status, 200, `a copy through gateway 1: ${copy.status} ${codeOf(copy)}`);
    await stack.heal();
    await voidsDrained();
    t.not(await stored('bet', bet.tx_id), 'applied', 'the bet never applied');
    t.equal(await p.balance(), '100.00');
    t.not((await send(1, 'bet', bet)).status, 200, 'nor after healing');
  },
);

t.test('red-team 2, N3/N5: without Redis, copies of a 200 get it or REQUEST_IN_PROGRESS, never 503/504', async (t) => {
  const p = await player('rt2', '100.00');
  const before = p.bet('before');
  const first = await send(0, 'bet', before);
  t.equal(first.status, 200);
  await redisDown();
  // A bet without Redis: settled by the ledger (N1), never a 200 that no store guards.
  const during = p.bet('during');
  const duringAnswer = await send(0, 'bet', during);
  t.not(duringAnswer.status, 200, `without Redis: ${duringAnswer.status} ${codeOf(duringAnswer)}`);
  stack.wallet.pause();
  t.teardown(() => stack.wallet.resume());
  const copies = await Promise.all([send(0, 'bet', before), send(0, 'bet', during)]);
  stack.wallet.resume();
  const allowed = (copy: Reply, firstAnswer: Reply) =>
    copy.body === firstAnswer.body || codeOf(copy) === 'REQUEST_IN_PROGRESS';
  t.ok(allowed(copies[0], first), `a copy of the 200: ${copies[0].status} ${codeOf(copies[0])}`);
  t.ok(allowed(copies[1], duringAnswer), `a copy of the refused bet: ${copies[1].status} ${codeOf(copies[1])}`);
  await stack.startRedis();
  await voidsDrained();
  t.equal(await p.balance(), '98.00', 'only the bet answered 200 moved money');
  t.equal((await send(0, 'bet', before)).body, first.body, 'with Redis, the first answer again');
});

t.test('no process memory replays an answer Redis and the ledger no longer hold', async (t) => {
  const p = await player('lru', '100.00');
  const bet = p.bet('bet');
  const first = await send(0, 'bet', bet);
  t.equal(first.status, 200);
  t.equal((await send(0, 'bet', bet)).body, first.body, 'replayed from Redis');
  // The ledger reverses it and Redis holds the reversal (what a void of that attempt would leave).
  await admin((client) => client.Void({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' }));
  const key = `phia:ans:bet:${bet.tx_id}`;
  const record = JSON.parse(await stack.redisCli(['GET', key])) as { f: string };
  const error = JSON.stringify({ error: 'wallet timeout', code: 'WALLET_TIMEOUT' });
  await stack.redisCli(['SET', key, JSON.stringify({ f: record.f, s: 504, b: error })]);
  const copy = await send(0, 'bet', bet);
  t.equal(copy.status, 504, `the copy follows Redis and the ledger (${copy.status} ${codeOf(copy)})`);
  t.equal(await p.balance(), '100.00');
});

t.test('N1, O3: an answer settled without Redis reaches it once it is back; copies replay it', async (t) => {
  const p = await player('n1-o3', '100.00');
  t.equal((await send(1, 'bet', p.bet('warm', '0.00'))).status, 200);
  const bet = p.bet('bet');
  await redisDown();
  const first = await send(1, 'bet', bet);
  t.equal(codeOf(first), 'WALLET_UNAVAILABLE', 'N1: the ledger tombstones it');
  await stack.startRedis();
  const key = `phia:ans:bet:${bet.tx_id}`;
  await waitFor('the answer in Redis', 10_000, async () => (await stack.redisCli(['GET', key])).trim() !== '');
  // The wallet away for a copy's whole budget: only Redis can answer it.
  stack.wallet.pause();
  t.teardown(() => stack.wallet.resume());
  const copy = await send(0, 'bet', bet);
  stack.wallet.resume();
  t.equal(copy.body, first.body, `a copy through the other gateway gets the first answer (${copy.status})`);
  t.equal(await p.balance(), '100.00');
});

t.test("O1: a copy's error in a double fault never becomes the key's answer", async (t) => {
  const p = await player('o1-decided', '100.00');
  t.equal((await send(1, 'bet', p.bet('warm', '0.00'))).status, 200);
  const bet = p.bet('bet');
  await redisDown();
  const first = await send(1, 'bet', bet);
  t.equal(codeOf(first), 'WALLET_UNAVAILABLE', 'N1: the ledger tombstones it');
  // The gateway holding that answer dies before Redis is back: only the ledger has it.
  await stack.gateways[1]!.kill('SIGKILL');
  t.teardown(() => stack.heal());
  await stack.startRedis();
  stack.wallet.pause();
  t.teardown(() => stack.wallet.resume());
  const copy = await send(0, 'bet', bet);
  stack.wallet.resume();
  t.not(copy.status, 200, `a copy meanwhile cannot read the ledger: its own error (${copy.status} ${codeOf(copy)})`);
  await stack.heal();
  await voidsDrained();
  t.equal((await send(0, 'bet', bet)).body, first.body, "later copies get the first answer, the ledger's");
  t.equal((await send(1, 'bet', bet)).body, first.body, 'through either gateway');
  t.equal(await p.balance(), '100.00');
});
