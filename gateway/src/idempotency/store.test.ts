/**
 * Both stores, same behaviour: the Redis one against the real Redis (127.0.0.1:6379, or REDIS_URL)
 * with a random key prefix, the in-process one in memory.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedisClient, waitForRedis } from '../redis.js';
import { randomPrefix } from '../test-helpers/index.js';
import { startTcpProxy } from '../test-helpers/tcp-proxy.js';
import { topologyClients } from '../test-helpers/redis-topologies.js';
import { InProcessIdempotencyStore } from './memory-store.js';
import { RedisIdempotencyStore } from './redis-store.js';
import type { IdempotencyStore } from './store.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = createRedisClient(REDIS_URL);
await waitForRedis(redis);
const prefix = randomPrefix();
t.teardown(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

/** A store whose Redis connection goes through a proxy the test can stop or hold. */
async function proxiedStore(t: { teardown: (fn: () => unknown) => void }) {
  const url = new URL(REDIS_URL);
  const proxy = await startTcpProxy(url.hostname, Number(url.port || 6379));
  const client = createRedisClient(`${proxy.url('redis')}${url.pathname}`); // TEST_REDIS_URL's database too
  t.teardown(async () => {
    client.disconnect();
    await proxy.close();
  });
  await waitForRedis(client);
  const store = new RedisIdempotencyStore({ redis: client, keyPrefix: prefix, ttlSeconds: 60 });
  t.teardown(() => store.close());
  return { proxy, client, store };
}

const opts = () => ({ waitUntil: Date.now() + 300, lockTtlMs: 2000 });
const answer = { status: 200, body: '{"balance":"90.00","currency":"USD","tx_id":"t1"}' };

const stores: [string, (ttlSeconds?: number) => IdempotencyStore][] = [
  ['redis', (ttlSeconds = 60) => new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds })],
  ['memory', (ttlSeconds = 60) => new InProcessIdempotencyStore({ ttlSeconds })],
];

// The same suite on a local Redis Cluster and a Sentinel set (REDIS_URL redis+cluster://, redis+sentinel://).
for (const [name, client] of await topologyClients(t)) {
  stores.push([name, (ttlSeconds = 60) => new RedisIdempotencyStore({ redis: client, keyPrefix: prefix, ttlSeconds })]);
}

for (const [name, make] of stores) {
  t.test(`${name}: first request takes the lock, duplicates replay the stored answer`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-a`;
    const first = await store.begin(key, 'fp1', opts());
    t.equal(first.kind, 'acquired');
    if (first.kind !== 'acquired') return;
    t.equal(await store.complete(key, first.token, 'fp1', answer), 'stored');
    const second = await store.begin(key, 'fp1', opts());
    t.same(second, { kind: 'replay', answer, waited: false });
    t.same(await store.begin(key, 'fp2', opts()), { kind: 'mismatch' }, 'same key, other content');
    t.equal(
      (await store.begin(`win:${name}-a`, 'fp9', opts())).kind,
      'acquired',
      'another request type is another key',
    );
    t.ok(await store.ping());
  });

  t.test(`${name}: error answers are stored and replayed byte for byte`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-err`;
    const first = await store.begin(key, 'fp', opts());
    if (first.kind !== 'acquired') return t.fail('not acquired');
    const error = { status: 504, body: '{"error":"wallet timeout","code":"WALLET_TIMEOUT"}' };
    await store.complete(key, first.token, 'fp', error);
    t.same(await store.begin(key, 'fp', opts()), { kind: 'replay', answer: error, waited: false });
  });

  t.test(`${name}: a duplicate waits for the running first, then replays`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-wait`;
    const first = await store.begin(key, 'fp', { waitUntil: Date.now() + 2000, lockTtlMs: 5000 });
    if (first.kind !== 'acquired') return t.fail('not acquired');
    const started = Date.now();
    const duplicate = store.begin(key, 'fp', { waitUntil: Date.now() + 2000, lockTtlMs: 5000 });
    const mismatch = await store.begin(key, 'other', { waitUntil: Date.now() + 2000, lockTtlMs: 5000 });
    t.same(mismatch, { kind: 'mismatch' }, 'different content while running: mismatch at once');
    await sleep(150);
    await store.complete(key, first.token, 'fp', answer);
    const result = await duplicate;
    t.same(result, { kind: 'replay', answer, waited: true });
    t.ok(Date.now() - started >= 140, 'it waited');
  });

  t.test(`${name}: a duplicate gives up at the end of its wait`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-busy`;
    const first = await store.begin(key, 'fp', opts());
    t.equal(first.kind, 'acquired');
    const started = Date.now();
    t.same(await store.begin(key, 'fp', { waitUntil: Date.now() + 200, lockTtlMs: 2000 }), { kind: 'in_progress' });
    const waited = Date.now() - started;
    t.ok(waited >= 190 && waited < 1000, `waited ${waited} ms`);
  });

  t.test(`${name}: only the owner completes or releases`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-owner`;
    const first = await store.begin(key, 'fp', opts());
    if (first.kind !== 'acquired') return t.fail('not acquired');
    t.equal(await store.complete(key, 'f'.repeat(32), 'fp', answer), 'taken', 'a stranger cannot complete');
    t.notOk(await store.release(key, 'f'.repeat(32)), 'a stranger cannot release');
    t.equal((await store.begin(key, 'fp', { waitUntil: 0, lockTtlMs: 2000 })).kind, 'in_progress', 'still locked');
    t.ok(await store.release(key, first.token), 'the owner releases');
    const next = await store.begin(key, 'fp', opts());
    t.equal(next.kind, 'acquired', 'free again, nothing stored');
    if (next.kind === 'acquired')
      t.equal(await store.complete(key, first.token, 'fp', answer), 'taken', 'old token is dead');
  });

  t.test(`${name}: a lock whose owner died expires`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-dead`;
    t.equal((await store.begin(key, 'fp', { waitUntil: 0, lockTtlMs: 100 })).kind, 'acquired');
    const next = await store.begin(key, 'fp', { waitUntil: Date.now() + 1000, lockTtlMs: 100 });
    t.equal(next.kind, 'acquired', 'the duplicate took over after the lock expired');
  });

  t.test(`${name}: answers expire after the ttl`, async (t) => {
    const store = make(1);
    t.teardown(() => store.close());
    const key = `bet:${name}-ttl`;
    const first = await store.begin(key, 'fp', opts());
    if (first.kind !== 'acquired') return t.fail('not acquired');
    await store.complete(key, first.token, 'fp', answer);
    t.equal((await store.begin(key, 'fp', opts())).kind, 'replay');
    await sleep(1100);
    t.equal((await store.begin(key, 'fp', opts())).kind, 'acquired', 'forgotten: the wallet answers next time');
  });
}

t.test('redis: 50 concurrent duplicates, one lock, 49 replays of the same answer', async (t) => {
  const store = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  const key = 'bet:concurrent';
  const results = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const begin = await store.begin(key, 'fp', { waitUntil: Date.now() + 2000, lockTtlMs: 5000 });
      if (begin.kind === 'acquired') {
        await sleep(100);
        await store.complete(key, begin.token, 'fp', answer);
        return 'owner';
      }
      return begin.kind === 'replay' ? begin.answer.body : begin.kind;
    }),
  );
  t.equal(results.filter((result) => result === 'owner').length, 1);
  t.equal(results.filter((result) => result === answer.body).length, 49);
});

t.test('redis: keys carry the prefix, the answer entry has the ttl', async (t) => {
  const store = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 30 });
  const first = await store.begin('refund:x1', 'fp', opts());
  t.ok(await redis.exists(`${prefix}lock:refund:x1`), 'lock key');
  const lockTtl = await redis.pttl(`${prefix}lock:refund:x1`);
  t.ok(lockTtl > 0 && lockTtl <= 2000, `lock ttl ${lockTtl}`);
  if (first.kind !== 'acquired') return t.fail('not acquired');
  await store.complete('refund:x1', first.token, 'fp', answer);
  t.notOk(await redis.exists(`${prefix}lock:refund:x1`), 'lock gone');
  const ttl = await redis.ttl(`${prefix}ans:refund:x1`);
  t.ok(ttl > 25 && ttl <= 30, `answer ttl ${ttl}`);
});

t.test('redis down: every operation says unreachable or false after 1 s of retries, none throws', async (t) => {
  const dead = createRedisClient('redis://127.0.0.1:1', { extra: { lazyConnect: true } });
  t.teardown(() => dead.disconnect());
  const store = new RedisIdempotencyStore({ redis: dead, keyPrefix: prefix, ttlSeconds: 60 });
  t.teardown(() => store.close());
  const started = Date.now();
  const begin = await store.begin('bet:down', 'fp', opts());
  t.equal(begin.kind, 'unreachable');
  t.equal(await store.complete('bet:down', 'x', 'fp', answer), 'missed');
  t.notOk(await store.release('bet:down', 'x'));
  t.notOk(await store.ping());
  t.ok(Date.now() - started < 3000, `bounded: ${Date.now() - started} ms`);
});

t.test('redis: scripts are registered once per client', async (t) => {
  const a = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  const b = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  t.equal((await a.begin('bet:twice', 'fp', opts())).kind, 'acquired');
  t.equal((await b.begin('bet:twice', 'fp', { waitUntil: 0, lockTtlMs: 100 })).kind, 'in_progress');
});

const decline = { status: 402, body: '{"error":"insufficient funds","code":"INSUFFICIENT_FUNDS"}' };
const timeout = { status: 504, body: '{"error":"timeout","code":"WALLET_TIMEOUT"}' };

t.test('redis, O3: a settled answer Redis missed is written once it answers, and copies replay it', async (t) => {
  const { proxy, client, store } = await proxiedStore(t);
  const owned = await store.begin('bet:o3-owner', 'fp', { waitUntil: 0, lockTtlMs: 5000 });
  if (owned.kind !== 'acquired') return t.fail('not acquired');

  await proxy.stop();
  const settled = { attempt: 'att-o3', own: false };
  t.equal(await store.complete('bet:o3-owner', owned.token, 'fp', timeout, settled), 'missed', 'not writable now');
  const tombstone = { status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' };
  t.equal(
    await store.complete('bet:o3-n1', undefined, 'fp', tombstone),
    'missed',
    'nor an answer settled without Redis',
  );
  t.equal(await redis.exists(`${prefix}ans:bet:o3-owner`, `${prefix}ans:bet:o3-n1`), 0, 'both wait in memory');

  await proxy.start();
  await waitForRedis(client, 5000);
  const written = () => redis.exists(`${prefix}ans:bet:o3-owner`, `${prefix}ans:bet:o3-n1`);
  for (let i = 0; i < 40 && (await written()) < 2; i++) await sleep(50);
  t.equal(await written(), 2, 'written when the client reconnects');
  t.equal(await redis.exists(`${prefix}lock:bet:o3-owner`), 0, "the owner's lock is dropped with it");
  t.same(await store.begin('bet:o3-owner', 'fp', opts()), { kind: 'replay', answer: timeout, waited: false });
  // A copy through another client (another gateway) replays it too.
  const other = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  t.same(await other.begin('bet:o3-n1', 'fp', opts()), { kind: 'replay', answer: tombstone, waited: false });
  t.same(await other.begin('bet:o3-n1', 'fp2', opts()), { kind: 'mismatch' }, 'and other content is a mismatch');
});

t.test('redis: an answer settled without the lock never replaces one, nor takes a held key', async (t) => {
  const store = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  const first = await store.begin('bet:nolock', 'fp', opts());
  if (first.kind !== 'acquired') return t.fail('not acquired');
  t.equal(await store.complete('bet:nolock', undefined, 'fp', answer), 'taken', 'the key is held by a running request');
  t.equal(await store.complete('bet:nolock', first.token, 'fp', answer), 'stored');
  const other = { status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' };
  t.equal(await store.complete('bet:nolock', undefined, 'fp', other), 'stored', 'free key: the script ran');
  t.same(await store.begin('bet:nolock', 'fp', opts()), { kind: 'replay', answer, waited: false }, 'first answer kept');
});

t.test('redis: a begin that timed out and ran late holds the lock for the token it returned', async (t) => {
  const { proxy, store } = await proxiedStore(t);
  proxy.pause();
  const begin = await store.begin('bet:late', 'fp', opts());
  if (begin.kind !== 'unreachable') return t.fail(`not unreachable: ${begin.kind}`);
  proxy.resume();
  const lock = `${prefix}lock:bet:late`;
  for (let i = 0; i < 40 && (await redis.exists(lock)) === 0; i++) await sleep(25);
  t.equal(await redis.exists(lock), 1, 'a late try took the lock');
  const tombstone = { status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' };
  t.equal(
    await store.complete('bet:late', begin.token, 'fp', tombstone),
    'stored',
    'the answer settled without the store',
  );
  t.equal(await redis.exists(lock), 0, 'takes the lock away with it');
  const other = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  t.same(await other.begin('bet:late', 'fp', opts()), { kind: 'replay', answer: tombstone, waited: false });
});

t.test("redis, C: an attempt's own answer Redis missed is not held; a late one yields to its void", async (t) => {
  const { proxy, client, store } = await proxiedStore(t);
  const unavailable = { status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' };
  const own = (attempt: string) => ({ attempt, own: true });
  const voided = (attempt: string) => ({ attempt, own: false });
  const missed = await store.begin('bet:c-missed', 'fp', { waitUntil: 0, lockTtlMs: 5000 });
  const declined = await store.begin('bet:c-declined', 'fp', { waitUntil: 0, lockTtlMs: 5000 });
  if (missed.kind !== 'acquired' || declined.kind !== 'acquired') return t.fail('not acquired');
  await proxy.stop();
  t.equal(await store.complete('bet:c-missed', missed.token, 'fp', answer, own('att-1')), 'missed');
  t.equal(await store.complete('bet:c-declined', declined.token, 'fp', decline, own('att-0')), 'missed');
  await proxy.start();
  await waitForRedis(client, 5000);
  await store.flush();
  const keys = [`${prefix}ans:bet:c-missed`, `${prefix}ans:bet:c-declined`];
  t.equal(await redis.exists(...keys), 0, 'neither is written later: neither left');

  // A complete that timed out and ran late, after the attempt's void was answered: either order ends
  // with the void's answer.
  const late = await store.begin('bet:c-late', 'fp', opts());
  if (late.kind !== 'acquired') return t.fail('not acquired');
  proxy.pause();
  const first = store.complete('bet:c-late', late.token, 'fp', answer, own('att-2'));
  t.equal(await first, 'missed', 'the 200 timed out');
  const second = store.complete('bet:c-late', late.token, 'fp', unavailable, voided('att-2'));
  t.equal(await second, 'missed', "the void's answer too; it waits in memory");
  proxy.resume();
  await waitForRedis(client, 5000);
  for (let i = 0; i < 40 && (await store.begin('bet:c-late', 'fp', opts())).kind !== 'replay'; i++) await sleep(50);
  t.same(await store.begin('bet:c-late', 'fp', opts()), { kind: 'replay', answer: unavailable, waited: false });

  // Another attempt's answer is never replaced, and an own answer never replaces anything.
  const other = await store.begin('bet:c-other', 'fp', opts());
  if (other.kind !== 'acquired') return t.fail('not acquired');
  t.equal(await store.complete('bet:c-other', other.token, 'fp', answer, own('att-3')), 'stored');
  t.equal(await store.complete('bet:c-other', undefined, 'fp', unavailable, voided('att-4')), 'stored');
  t.same(await store.begin('bet:c-other', 'fp', opts()), { kind: 'replay', answer, waited: false });
  const errorFirst = await store.begin('bet:c-error', 'fp', opts());
  if (errorFirst.kind !== 'acquired') return t.fail('not acquired');
  t.equal(await store.complete('bet:c-error', errorFirst.token, 'fp', unavailable, voided('att-5')), 'stored');
  t.equal(await store.complete('bet:c-error', undefined, 'fp', answer, own('att-5')), 'stored');
  t.same(await store.begin('bet:c-error', 'fp', opts()), { kind: 'replay', answer: unavailable, waited: false });
});

t.test('C: the horizon of a free key is the ttl back, less the clock skew; none in memory', async (t) => {
  const store = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 3600 });
  t.teardown(() => store.close());
  t.equal(store.unansweredAfter(10_000_000), 10_000_000 - 3_600_000 + 60_000);
  const memory = new InProcessIdempotencyStore({ ttlSeconds: 3600 });
  t.teardown(() => memory.close());
  t.equal(memory.unansweredAfter(), 0);
});

t.test('redis, R4: a copy whose wait is over answers in progress when Redis then fails', async (t) => {
  const owner = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  t.teardown(() => owner.close());
  t.equal((await owner.begin('bet:r4-fail', 'fp', { waitUntil: 0, lockTtlMs: 5000 })).kind, 'acquired');
  const { proxy, store } = await proxiedStore(t);
  const copy = store.begin('bet:r4-fail', 'fp', { waitUntil: Date.now() + 300, lockTtlMs: 5000 });
  await sleep(150); // it has seen the lock and polls
  proxy.pause();
  t.same(await copy, { kind: 'in_progress' }, 'not unreachable: it never goes on to settle without Redis');
  proxy.resume();
});
