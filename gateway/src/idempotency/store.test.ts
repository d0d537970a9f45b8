/**
 * Both stores, same behaviour: the Redis one against the real Redis (127.0.0.1:6379, or REDIS_URL)
 * with a random key prefix, the in-process one in memory.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedisClient, waitForRedis } from '../redis.js';
import { randomPrefix } from '../test-helpers/index.js';
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

const opts = { waitMs: 300, lockTtlMs: 2000 };
const answer = { status: 200, body: '{"balance":"90.00","currency":"USD","tx_id":"t1"}' };

const stores: [string, () => IdempotencyStore][] = [
  ['redis', () => new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 })],
  ['memory', () => new InProcessIdempotencyStore({ ttlSeconds: 60 })],
];

for (const [name, make] of stores) {
  t.test(`${name}: storeLate writes a late answer only where no answer and no other request is`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const late = { status: 200, body: '{"balance":"80.00","currency":"USD","tx_id":"late"}' };

    const fresh = `bet:${name}-late-fresh`;
    t.equal(await store.storeLate(fresh, undefined, 'fp', late), 'stored');
    t.same(await store.begin(fresh, 'fp', opts), { kind: 'replay', answer: late, waited: false });
    t.equal(await store.storeLate(fresh, undefined, 'fp', answer), 'answered', 'never over another answer');
    t.same(await store.begin(fresh, 'fp', opts), { kind: 'replay', answer: late, waited: false });

    // Another request holds the key: it stores its own answer; the late one waits.
    const held = `bet:${name}-late-held`;
    const owner = await store.begin(held, 'fp', opts);
    if (owner.kind !== 'acquired') return t.fail('not acquired');
    t.equal(await store.storeLate(held, 'not-the-owner', 'fp', late), 'locked');
    t.ok(await store.complete(held, owner.token, 'fp', answer), 'the owner still completes');
    t.equal(await store.storeLate(held, 'not-the-owner', 'fp', late), 'answered');

    // The request's own lock (a begin that ran after its caller gave up on it) is replaced.
    const orphan = `bet:${name}-late-orphan`;
    const mine = await store.begin(orphan, 'fp', opts);
    if (mine.kind !== 'acquired') return t.fail('not acquired');
    t.equal(await store.storeLate(orphan, mine.token, 'fp', late), 'stored');
    t.same(await store.begin(orphan, 'fp', opts), { kind: 'replay', answer: late, waited: false }, 'no 409 for copies');
  });

  t.test(`${name}: storeLate with correct writes the ledger's outcome over an answer given blind`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const unavailable = { status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' };
    const timeout = { status: 504, body: '{"error":"wallet timeout","code":"WALLET_TIMEOUT"}' };
    const declined = { status: 402, body: '{"error":"insufficient funds","code":"INSUFFICIENT_FUNDS"}' };

    const key = `bet:${name}-correct`;
    t.equal(await store.storeLate(key, undefined, 'fp', unavailable), 'stored');
    t.equal(await store.storeLate(key, undefined, 'fp', timeout), 'answered', 'without correct, never replaced');
    t.equal(
      await store.storeLate(key, undefined, 'fp', timeout, { correct: true }),
      'answered',
      'between two errors for the same content the first stays',
    );
    t.same(await store.begin(key, 'fp', opts), { kind: 'replay', answer: unavailable, waited: false });
    t.equal(await store.storeLate(key, undefined, 'fp', answer, { correct: true }), 'stored', 'a decided outcome');
    t.same(await store.begin(key, 'fp', opts), { kind: 'replay', answer, waited: false });
    t.equal(
      await store.storeLate(key, undefined, 'fp', declined, { correct: true }),
      'answered',
      'a decided answer stays',
    );
    t.equal(await store.storeLate(key, undefined, 'other-fp', timeout, { correct: true }), 'answered');
    t.same(await store.begin(key, 'fp', opts), { kind: 'replay', answer, waited: false });

    // A variant's 503 took the key while the owner's answer was on its way: the ledger's outcome for the
    // owner replaces it, a 200 as well as the error the owner's void recorded; that one then stays.
    const taken = `bet:${name}-taken`;
    t.equal(await store.storeLate(taken, undefined, 'variant-fp', unavailable), 'stored');
    t.equal(await store.storeLate(taken, undefined, 'owner-fp', timeout), 'answered', 'not without correct');
    t.equal(await store.storeLate(taken, undefined, 'owner-fp', timeout, { correct: true, final: true }), 'stored');
    t.same(await store.begin(taken, 'owner-fp', opts), { kind: 'replay', answer: timeout, waited: false });
    t.same(await store.begin(taken, 'variant-fp', opts), { kind: 'mismatch' });
    t.equal(
      await store.storeLate(taken, undefined, 'variant-fp', unavailable, { correct: true }),
      'answered',
      "the ledger's outcome is never replaced",
    );
    // A 200 read from an applied row is replaced by that row's voided outcome (the void of the attempt
    // that applied it, answered with an error, reversed it afterwards); a final one is not.
    const reversed = `bet:${name}-reversed`;
    t.equal(await store.storeLate(reversed, undefined, 'fp', timeout), 'stored');
    t.equal(await store.storeLate(reversed, undefined, 'fp', answer, { correct: true }), 'stored');
    t.equal(await store.storeLate(reversed, undefined, 'fp', timeout, { correct: true, final: true }), 'stored');
    t.same(await store.begin(reversed, 'fp', opts), { kind: 'replay', answer: timeout, waited: false });
    const given = `bet:${name}-given`;
    t.equal(await store.storeLate(given, undefined, 'fp', answer, { correct: true, final: true }), 'stored');
    t.equal(await store.storeLate(given, undefined, 'fp', timeout, { correct: true, final: true }), 'answered');

    const taken200 = `bet:${name}-taken-200`;
    t.equal(await store.storeLate(taken200, undefined, 'variant-fp', unavailable), 'stored');
    t.equal(await store.storeLate(taken200, undefined, 'owner-fp', answer, { correct: true }), 'stored');
    t.same(await store.begin(taken200, 'owner-fp', opts), { kind: 'replay', answer, waited: false });

    // A decided outcome is written even while a copy holds the key (the copy's own answer never overwrites it).
    const busy = `bet:${name}-correct-busy`;
    const copy = await store.begin(busy, 'fp', opts);
    if (copy.kind !== 'acquired') return t.fail('not acquired');
    t.equal(await store.storeLate(busy, undefined, 'fp', answer, { correct: true }), 'stored');
    await store.complete(busy, copy.token, 'fp', unavailable);
    t.same(await store.begin(busy, 'fp', opts), { kind: 'replay', answer, waited: false });
  });

  t.test(`${name}: first request takes the lock, duplicates replay the stored answer`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-a`;
    const first = await store.begin(key, 'fp1', opts);
    t.equal(first.kind, 'acquired');
    if (first.kind !== 'acquired') return;
    t.ok(await store.complete(key, first.token, 'fp1', answer));
    const second = await store.begin(key, 'fp1', opts);
    t.same(second, { kind: 'replay', answer, waited: false });
    t.same(await store.begin(key, 'fp2', opts), { kind: 'mismatch' }, 'same key, other content');
    t.equal((await store.begin(`win:${name}-a`, 'fp9', opts)).kind, 'acquired', 'another request type is another key');
    t.ok(await store.ping());
  });

  t.test(`${name}: error answers are stored and replayed byte for byte`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-err`;
    const first = await store.begin(key, 'fp', opts);
    if (first.kind !== 'acquired') return t.fail('not acquired');
    const error = { status: 504, body: '{"error":"wallet timeout","code":"WALLET_TIMEOUT"}' };
    await store.complete(key, first.token, 'fp', error);
    t.same(await store.begin(key, 'fp', opts), { kind: 'replay', answer: error, waited: false });
  });

  t.test(`${name}: a duplicate waits for the running first, then replays`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-wait`;
    const first = await store.begin(key, 'fp', { waitMs: 2000, lockTtlMs: 5000 });
    if (first.kind !== 'acquired') return t.fail('not acquired');
    const started = Date.now();
    const duplicate = store.begin(key, 'fp', { waitMs: 2000, lockTtlMs: 5000 });
    const mismatch = await store.begin(key, 'other', { waitMs: 2000, lockTtlMs: 5000 });
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
    const first = await store.begin(key, 'fp', opts);
    t.equal(first.kind, 'acquired');
    const started = Date.now();
    t.same(await store.begin(key, 'fp', { waitMs: 200, lockTtlMs: 2000 }), { kind: 'in_progress' });
    const waited = Date.now() - started;
    t.ok(waited >= 190 && waited < 1000, `waited ${waited} ms`);
  });

  t.test(`${name}: only the owner completes or releases`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-owner`;
    const first = await store.begin(key, 'fp', opts);
    if (first.kind !== 'acquired') return t.fail('not acquired');
    t.notOk(await store.complete(key, 'f'.repeat(32), 'fp', answer), 'a stranger cannot complete');
    t.notOk(await store.release(key, 'f'.repeat(32)), 'a stranger cannot release');
    t.equal((await store.begin(key, 'fp', { waitMs: 0, lockTtlMs: 2000 })).kind, 'in_progress', 'still locked');
    t.ok(await store.release(key, first.token), 'the owner releases');
    const next = await store.begin(key, 'fp', opts);
    t.equal(next.kind, 'acquired', 'free again, nothing stored');
    if (next.kind === 'acquired') t.notOk(await store.complete(key, first.token, 'fp', answer), 'old token is dead');
  });

  t.test(`${name}: a lock whose owner died expires`, async (t) => {
    const store = make();
    t.teardown(() => store.close());
    const key = `bet:${name}-dead`;
    t.equal((await store.begin(key, 'fp', { waitMs: 0, lockTtlMs: 100 })).kind, 'acquired');
    const next = await store.begin(key, 'fp', { waitMs: 1000, lockTtlMs: 100 });
    t.equal(next.kind, 'acquired', 'the duplicate took over after the lock expired');
  });

  t.test(`${name}: answers expire after the ttl`, async (t) => {
    const store =
      name === 'redis'
        ? new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 1 })
        : new InProcessIdempotencyStore({ ttlSeconds: 1 });
    t.teardown(() => store.close());
    const key = `bet:${name}-ttl`;
    const first = await store.begin(key, 'fp', opts);
    if (first.kind !== 'acquired') return t.fail('not acquired');
    await store.complete(key, first.token, 'fp', answer);
    t.equal((await store.begin(key, 'fp', opts)).kind, 'replay');
    await sleep(1100);
    t.equal((await store.begin(key, 'fp', opts)).kind, 'acquired', 'forgotten: the wallet answers next time');
  });
}

t.test('redis: 50 concurrent duplicates, one lock, 49 replays of the same answer', async (t) => {
  const store = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  const key = 'bet:concurrent';
  const results = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const begin = await store.begin(key, 'fp', { waitMs: 2000, lockTtlMs: 5000 });
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
  const first = await store.begin('refund:x1', 'fp', opts);
  t.ok(await redis.exists(`${prefix}lock:refund:x1`), 'lock key');
  const lockTtl = await redis.pttl(`${prefix}lock:refund:x1`);
  t.ok(lockTtl > 0 && lockTtl <= 2000, `lock ttl ${lockTtl}`);
  if (first.kind !== 'acquired') return t.fail('not acquired');
  await store.complete('refund:x1', first.token, 'fp', answer);
  t.notOk(await redis.exists(`${prefix}lock:refund:x1`), 'lock gone');
  const ttl = await redis.ttl(`${prefix}ans:refund:x1`);
  t.ok(ttl > 25 && ttl <= 30, `answer ttl ${ttl}`);
});

t.test('redis down: every operation says bypass or false, none throws or hangs', async (t) => {
  const dead = createRedisClient('redis://127.0.0.1:1', { extra: { lazyConnect: true } });
  t.teardown(() => dead.disconnect());
  const store = new RedisIdempotencyStore({ redis: dead, keyPrefix: prefix, ttlSeconds: 60 });
  const started = Date.now();
  const begin = await store.begin('bet:down', 'fp', opts);
  t.equal(begin.kind, 'bypass');
  t.notOk(await store.complete('bet:down', 'x', 'fp', answer));
  t.notOk(await store.release('bet:down', 'x'));
  t.notOk(await store.ping());
  t.ok(Date.now() - started < 1000, `fast: ${Date.now() - started} ms`);
});

t.test('redis: scripts are registered once per client', async (t) => {
  const a = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  const b = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
  t.equal((await a.begin('bet:twice', 'fp', opts)).kind, 'acquired');
  t.equal((await b.begin('bet:twice', 'fp', { waitMs: 0, lockTtlMs: 100 })).kind, 'in_progress');
});
