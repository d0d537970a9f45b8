/**
 * The void queue's retry logic, with a tiny fake in place of the wallet's Void (the real wallet is
 * exercised in the stack tests), over the in-process backend and the real Redis.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedisClient, waitForRedis, type RedisClient } from '../redis.js';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, WALLET_ERROR_CODE_KEY, WALLET_PROTO_PATH } from '@phia/proto';
import { buildApp } from '../app.js';
import { moneyBody, post, quietLogger, randomPrefix, testConfig } from '../test-helpers/index.js';
import { topologyClients } from '../test-helpers/redis-topologies.js';
import { WalletError } from '../wallet-client/client.js';
import { InProcessIdempotencyStore } from '../idempotency/memory-store.js';
import { RedisIdempotencyStore } from '../idempotency/redis-store.js';
import { RedisVoidBackend, type VoidJob } from './backends.js';
import { VoidQueue, walletRefusedVoid } from './queue.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = createRedisClient(REDIS_URL);
await waitForRedis(redis);
const prefix = randomPrefix();
t.teardown(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const job = (tx: string): VoidJob => ({
  kind: 'bet',
  tx_id: tx,
  error_code: 'WALLET_TIMEOUT',
  fingerprint: `fp-${tx}`,
  attempt_id: `attempt-${tx}`,
});

const ok = { status: 200, body: '{"balance":"1.00","currency":"USD","tx_id":"t3b"}' };
const timeout = { status: 504, body: '{"error":"wallet timeout","code":"WALLET_TIMEOUT"}' };

/** A wallet that fails the first `failures` voids of each tx, and records every attempt. */
function flakyWallet(failures: number) {
  const attempts = new Map<string, number>();
  const confirmed: VoidJob[] = [];
  return {
    attempts,
    confirmed,
    send: async (j: VoidJob) => {
      const n = (attempts.get(j.tx_id) ?? 0) + 1;
      attempts.set(j.tx_id, n);
      if (n <= failures) throw new Error('wallet unavailable');
      confirmed.push(j);
    },
  };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(10);
  }
  return false;
}

// The durable backend on one server, and on a local Redis Cluster and Sentinel set (where installed).
const backends: [string, RedisClient | undefined][] = [
  ['memory', undefined],
  ['redis', redis],
];
for (const [name, client] of await topologyClients(t)) backends.push([name, client]);

for (const [backend, client] of backends) {
  t.test(`${backend}: retries with backoff until the wallet confirms`, async (t) => {
    const wallet = flakyWallet(3);
    const queue = new VoidQueue({
      send: wallet.send,
      baseDelayMs: 20,
      maxDelayMs: 200,
      pollIntervalMs: 10,
      ...(client !== undefined ? { durable: new RedisVoidBackend(client, `${prefix}a:`) } : {}),
    });
    queue.start();
    t.teardown(() => queue.close());
    t.equal(await queue.enqueue(job('t1')), client !== undefined ? 'durable' : 'memory');
    t.equal(await queue.pendingCount(), 1);
    t.ok(await until(() => wallet.confirmed.length === 1), 'confirmed in the end');
    t.equal(wallet.attempts.get('t1'), 4, 'three failures, then success');
    t.ok(await until(async () => (await queue.pendingCount()) === 0), 'nothing pending');
    t.same(wallet.confirmed[0], job('t1'));
  });

  t.test(`${backend}: the same void queued twice is sent once`, async (t) => {
    const wallet = flakyWallet(0);
    const queue = new VoidQueue({
      send: wallet.send,
      ...(client !== undefined ? { durable: new RedisVoidBackend(client, `${prefix}b:`) } : {}),
    });
    await queue.enqueue(job('t2'));
    await queue.enqueue(job('t2'));
    t.equal(await queue.pendingCount(), 1);
    t.equal(await queue.drainOnce(), 1);
    t.equal(await queue.drainOnce(), 0);
    t.equal(wallet.attempts.get('t2'), 1);
  });

  t.test(
    `${backend}: a void's answer is stored where the key has none, dropped when another attempt's outcome stands`,
    async (t) => {
      const wallet = flakyWallet(1);
      const store =
        client !== undefined
          ? new RedisIdempotencyStore({ redis: client, keyPrefix: `${prefix}c:`, ttlSeconds: 60 })
          : new InProcessIdempotencyStore({ ttlSeconds: 60 });
      const queue = new VoidQueue({
        send: async (j: VoidJob) => {
          await wallet.send(j);
          return { outcome: 'kept' };
        },
        baseDelayMs: 1,
        ...(client !== undefined
          ? { durable: new RedisVoidBackend(client, `${prefix}c:`, 60) }
          : { answers: store as InProcessIdempotencyStore }),
      });
      const copy = () => store.begin('bet:t3', 'fp-t3', { waitUntil: 0, lockTtlMs: 1000 });
      const decided = await store.begin('bet:t3b', 'fp-t3b', { waitUntil: 0, lockTtlMs: 1000 });
      if (decided.kind === 'acquired') await store.complete('bet:t3b', decided.token, 'fp-t3b', ok);
      await queue.enqueue(job('t3'));
      await queue.enqueue(job('t3b'));
      t.same(await copy(), { kind: 'replay', answer: timeout, waited: false }, 'R7: a copy replays the error');
      t.equal(await queue.drainOnce(), 0, 'the first delivery fails');
      t.same(await copy(), { kind: 'replay', answer: timeout, waited: false }, 'still pending');
      await sleep(10);
      t.equal(await queue.drainOnce(), 2);
      t.equal((await copy()).kind, 'acquired', 'O1: kept, the ledger answers copies');
      const other = await store.begin('bet:t3b', 'fp-t3b', { waitUntil: 0, lockTtlMs: 1000 });
      t.same(other, { kind: 'replay', answer: ok, waited: false }, 'a decided answer is never replaced nor dropped');
    },
  );
}

t.test('a backlog is delivered batch after batch, not one batch per poll interval', async (t) => {
  // The bench's overload left 10,878 voids; at 50 per 500 ms poll they took longer than the run allowed.
  const wallet = flakyWallet(0);
  const queue = new VoidQueue({ send: wallet.send, batchSize: 10, pollIntervalMs: 60_000 });
  t.teardown(() => queue.close());
  for (let index = 0; index < 120; index++) await queue.enqueue(job(`backlog-${index}`));
  queue.start();
  t.ok(await until(() => wallet.confirmed.length === 120, 10_000), 'all 120 delivered without a 60 s wait');
  t.equal(await queue.pendingCount(), 0);
});

t.test('backoff doubles up to the cap, with jitter', async (t) => {
  const queue = new VoidQueue({ send: async () => {}, baseDelayMs: 100, maxDelayMs: 1000 });
  for (const [attempts, base] of [
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1000],
    [20, 1000],
  ] as const) {
    const delay = queue.backoff(attempts);
    t.ok(delay >= base * 0.8 && delay <= base * 1.2, `attempt ${attempts}: ${delay} ms near ${base}`);
  }
});

t.test('redis: the queue is durable, a new gateway delivers what an old one left', async (t) => {
  const durablePrefix = `${prefix}c:`;
  const down = flakyWallet(1000);
  const first = new VoidQueue({ send: down.send, durable: new RedisVoidBackend(redis, durablePrefix), leaseMs: 50 });
  await first.enqueue(job('t3'));
  await first.drainOnce();
  t.equal(down.attempts.get('t3'), 1, 'tried once, wallet down');
  await first.close();
  t.equal(await redis.zcard(`${durablePrefix}voids`), 1, 'still in Redis');

  const up = flakyWallet(0);
  const second = new VoidQueue({
    send: up.send,
    durable: new RedisVoidBackend(redis, durablePrefix),
    pollIntervalMs: 20,
  });
  second.start();
  t.teardown(() => second.close());
  t.ok(await until(() => up.confirmed.length === 1), 'the next gateway delivered it');
  t.ok(await until(async () => (await redis.zcard(`${durablePrefix}voids`)) === 0), 'and removed it');
  t.equal(await redis.hlen(`${durablePrefix}voids:attempts`), 0, 'attempt counter cleaned');
});

t.test('redis down at enqueue time: the void goes to the in-process queue and is still delivered', async (t) => {
  const dead = createRedisClient('redis://127.0.0.1:1', { extra: { lazyConnect: true } });
  t.teardown(() => dead.disconnect());
  const wallet = flakyWallet(1);
  const errors: string[] = [];
  const queue = new VoidQueue({
    send: wallet.send,
    durable: new RedisVoidBackend(dead, prefix),
    baseDelayMs: 10,
    pollIntervalMs: 10,
    onBackendError: (name) => errors.push(name),
  });
  queue.start();
  t.teardown(() => queue.close());
  t.equal(await queue.enqueue(job('t4')), 'memory');
  t.ok(await until(() => wallet.confirmed.length === 1), 'delivered from memory');
  t.ok(errors.includes('redis'), 'the Redis failure was reported');
  t.ok((await queue.pendingCount()) >= 0, 'pending count does not throw with Redis down');
});

t.test("O1: the error stays the answer only while the ledger's row answers it too", async (t) => {
  const store = new InProcessIdempotencyStore({ ttlSeconds: 60 });
  // [outcome, the error the row answers after the void, whether the void's error stays]
  const cases: [string, string, boolean][] = [
    ['tombstoned', 'WALLET_TIMEOUT', true],
    ['reversed', 'WALLET_TIMEOUT', true],
    ['decline_replaced', 'WALLET_TIMEOUT', true],
    ['already_voided', 'WALLET_TIMEOUT', true], // this attempt's own earlier void, its reply lost
    ['already_voided', 'WALLET_UNAVAILABLE', false], // voided before by another (N1)
    ['tombstoned', 'BET_REFUNDED', false],
    ['kept', '', false],
    ['declined', 'INSUFFICIENT_FUNDS', false],
    ['not_matching', 'WALLET_UNAVAILABLE', false], // the row is other content's: the owner's copies
    ['not_matching', 'WALLET_TIMEOUT', false], // get its answer, even when it is the same error
  ];
  const send = async (j: VoidJob) => {
    const [outcome, error_code] = cases[Number(j.tx_id.slice(2))] as [string, string, boolean];
    return { outcome, error_code };
  };
  const queue = new VoidQueue({ send, answers: store });
  for (const n of cases.keys()) await queue.enqueue(job(`t7${n}`));
  t.equal(await queue.drainOnce(), cases.length);
  for (const [n, [outcome, code, stays]] of cases.entries()) {
    const copy = await store.begin(`bet:t7${n}`, `fp-t7${n}`, { waitUntil: 0, lockTtlMs: 1000 });
    if (stays) t.same(copy, { kind: 'replay', answer: timeout, waited: false }, `${outcome}, ${code}: the error stays`);
    else t.equal(copy.kind, 'acquired', `${outcome}, ${code || 'no error'}: the ledger answers copies`);
  }
});

t.test('O3: voids kept in memory while Redis failed move there with their answer once it answers', async (t) => {
  const durablePrefix = `${prefix}o3:`;
  class FailsOnce extends RedisVoidBackend {
    #failed = false;
    override async add(j: VoidJob, dueAt: number): Promise<void> {
      if (!this.#failed) {
        this.#failed = true;
        throw new Error('Connection is closed.');
      }
      return super.add(j, dueAt);
    }
  }
  const queue = new VoidQueue({
    send: async () => Promise.reject(new Error('wallet unavailable')),
    durable: new FailsOnce(redis, durablePrefix, 60),
    baseDelayMs: 60_000,
  });
  t.equal(await queue.enqueue(job('t5')), 'memory');
  t.equal(await redis.zcard(`${durablePrefix}voids`), 0, 'not in Redis yet');
  await queue.drainOnce();
  t.equal(await redis.zcard(`${durablePrefix}voids`), 1, 'moved to Redis');
  const store = new RedisIdempotencyStore({ redis, keyPrefix: durablePrefix, ttlSeconds: 60 });
  const copy = await store.begin('bet:t5', 'fp-t5', { waitUntil: 0, lockTtlMs: 1000 });
  t.same(copy, { kind: 'replay', answer: timeout, waited: false }, 'its answer with it');
  t.equal(await queue.pendingCount(), 1, 'counted once');
});

t.test('close makes one last delivery pass', async (t) => {
  const wallet = flakyWallet(0);
  const queue = new VoidQueue({ send: wallet.send, pollIntervalMs: 60_000, baseDelayMs: 60_000 });
  await queue.enqueue(job('t6')); // the loop never ran: only close can deliver it
  await queue.close();
  t.same(wallet.confirmed, [job('t6')]);
  t.equal(await queue.pendingCount(), 0);
});

t.test('close stops the loop', async (t) => {
  const wallet = flakyWallet(0);
  const queue = new VoidQueue({ send: wallet.send, pollIntervalMs: 10 });
  queue.start();
  await queue.close();
  await queue.enqueue(job('t5'));
  await sleep(50);
  t.equal(wallet.attempts.size, 0, 'nothing sent after close');
  t.equal(await queue.pendingCount(), 1);
});

t.test(
  'a void the wallet refuses with a decline is reported once and still retried; transient failures are not',
  async (t) => {
    const reported: [string, string][] = [];
    let attempts = 0;
    const queue = new VoidQueue({
      send: async (j) => {
        attempts++;
        if (j.tx_id === 'spent') throw new WalletError('INSUFFICIENT_FUNDS', true, 9, 'insufficient funds');
        if (j.tx_id === 'timeout') throw new WalletError('WALLET_TIMEOUT', true, 4, 'deadline passed');
        throw new WalletError('WALLET_UNAVAILABLE', false, 14, 'unavailable');
      },
      baseDelayMs: 5,
      maxDelayMs: 10,
      pollIntervalMs: 5,
      onUnappliable: (j, _attempts, code) => reported.push([j.tx_id, code]),
    });
    queue.start();
    t.teardown(() => queue.close(0));
    for (const tx of ['spent', 'timeout', 'down']) await queue.enqueue(job(tx));
    t.ok(await until(() => attempts >= 15), 'every void is retried');
    t.same(reported, [['spent', 'INSUFFICIENT_FUNDS']], 'only the decided refusal, once');
    t.equal(await queue.pendingCount(), 3, 'all three are still pending');
    t.equal(walletRefusedVoid(new WalletError('INVALID_REQUEST', true, 3, 'x')), 'INVALID_REQUEST');
    t.equal(walletRefusedVoid(new WalletError('INTERNAL', true, 13, 'x')), undefined, 'a fault may pass');
    t.equal(walletRefusedVoid(new Error('x')), undefined);
  },
);

t.test('phia_voids_unappliable_total counts a void the wallet refuses, by kind and code', async (t) => {
  // A wallet whose Win times out (so the gateway answers 504 and queues a void) and whose Void is
  // refused with INSUFFICIENT_FUNDS, as when a late win was already spent.
  const definition = protoLoader.loadSync(WALLET_PROTO_PATH, { ...PROTO_LOADER_OPTIONS });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    wallet: { v1: { Wallet: grpc.ServiceClientConstructor } };
  };
  let voidAttempts = 0;
  const server = new grpc.Server();
  server.addService(loaded.wallet.v1.Wallet.service, {
    Win: (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
      callback({ code: grpc.status.DEADLINE_EXCEEDED, details: 'too late' }),
    Void: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      voidAttempts++;
      const metadata = new grpc.Metadata();
      metadata.set(WALLET_ERROR_CODE_KEY, 'INSUFFICIENT_FUNDS');
      callback({ code: grpc.status.FAILED_PRECONDITION, details: 'insufficient funds', metadata });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  t.teardown(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  const app = await buildApp({
    config: testConfig({ WALLET_ADDR: `127.0.0.1:${port}` }),
    logger: quietLogger(),
    redis: null,
    defaultMetrics: false,
    voidQueue: { baseDelayMs: 5, maxDelayMs: 10, pollIntervalMs: 5 },
  });
  t.teardown(() => app.close());
  await app.ready();
  const metrics = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.notMatch(await metrics(), /^phia_voids_unappliable_total\{/m, 'nothing counted yet');

  const win = await post(app, '/phia/win', { ...moneyBody(), tx_id: 'late-win', amount: '10.00' });
  t.equal(win.statusCode, 504);
  t.ok(await until(() => voidAttempts >= 3), 'the refused void is retried');
  const text = await metrics();
  t.match(text, /^phia_voids_unappliable_total\{kind="win",code="INSUFFICIENT_FUNDS"\} 1$/m, 'counted once');
  t.match(text, /^phia_pending_voids\{backend="memory"\} 1$/m, 'still pending');
});
