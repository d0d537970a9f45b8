/**
 * The in-process LRU of final answers, over the real Redis store: replays without Redis only for
 * answers that can never change, the same answer through two gateways sharing Redis, bounded size.
 */
import t from 'tap';
import { createRedisClient, waitForRedis } from '../redis.js';
import { randomPrefix } from '../test-helpers/index.js';
import { REDIS_URL } from '../test-helpers/stack.js';
import { FinalAnswerCache, isFinalAnswer } from './final-answer-cache.js';
import { RedisIdempotencyStore } from './redis-store.js';
import type { StoredAnswer } from './store.js';

const redis = createRedisClient(REDIS_URL);
await waitForRedis(redis);
const prefix = randomPrefix();
t.teardown(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const options = { waitMs: 200, lockTtlMs: 1000 };
const ok: StoredAnswer = { status: 200, body: '{"balance":"9.00","currency":"USD","tx_id":"t"}' };
const declined: StoredAnswer = { status: 402, body: '{"error":"insufficient funds","code":"INSUFFICIENT_FUNDS"}' };
const timeout: StoredAnswer = { status: 504, body: '{"error":"wallet timeout","code":"WALLET_TIMEOUT"}' };

const gateway = (maxEntries = 100) =>
  new FinalAnswerCache(new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 }), {
    maxEntries,
    ttlMs: 60_000,
  });

async function answer(store: FinalAnswerCache, key: string, value: StoredAnswer): Promise<void> {
  const begin = await store.begin(key, 'fp', options);
  if (begin.kind !== 'acquired') throw new Error(`expected the lock, got ${begin.kind}`);
  if (!(await store.complete(key, begin.token, 'fp', value))) throw new Error('not stored');
}

t.test('which answers are final', async (t) => {
  t.ok(isFinalAnswer(ok));
  t.ok(isFinalAnswer(declined));
  t.ok(isFinalAnswer({ status: 409, body: '{"error":"bet already refunded","code":"BET_REFUNDED"}' }));
  t.notOk(isFinalAnswer(timeout));
  t.notOk(isFinalAnswer({ status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' }));
  t.notOk(isFinalAnswer({ status: 500, body: '{"error":"internal error","code":"INTERNAL"}' }));
  t.notOk(isFinalAnswer({ status: 409, body: '{"error":"request in progress","code":"REQUEST_IN_PROGRESS"}' }));
  t.notOk(isFinalAnswer({ status: 409, body: '{"error":"tx_id reused","code":"IDEMPOTENCY_MISMATCH"}' }));
  t.notOk(isFinalAnswer({ status: 402, body: 'not json' }));
});

t.test('final answers replay from process memory, the same through another gateway', async (t) => {
  const a = gateway();
  const b = gateway();
  await answer(a, 'bet:ok', ok);
  await answer(a, 'bet:declined', declined);
  t.equal(a.size, 2, 'kept once stored in Redis');

  // Gone from Redis: only the in-process copy can answer now (proves Redis is not asked).
  await redis.del(`${prefix}ans:bet:ok`, `${prefix}ans:bet:declined`);
  t.same(await a.begin('bet:ok', 'fp', options), { kind: 'replay', answer: ok, waited: false });
  t.same(await a.begin('bet:declined', 'fp', options), { kind: 'replay', answer: declined, waited: false });
  t.same(await a.begin('bet:ok', 'other-fp', options), { kind: 'mismatch' }, 'other content: mismatch');

  // The other gateway reads Redis, then keeps what it read.
  await answer(a, 'win:ok', ok);
  t.same(await b.begin('win:ok', 'fp', options), { kind: 'replay', answer: ok, waited: false });
  t.equal(b.size, 1);
});

t.test('undecided answers are never kept in process', async (t) => {
  const a = gateway();
  await answer(a, 'bet:timeout', timeout);
  t.equal(a.size, 0);
  t.same(await a.begin('bet:timeout', 'fp', options), { kind: 'replay', answer: timeout, waited: false });
  t.equal(a.size, 0, 'not kept from a Redis replay either');
  // A released lock (no answer) is not an answer.
  const begin = await a.begin('bet:released', 'fp', options);
  t.equal(begin.kind, 'acquired');
  if (begin.kind === 'acquired') await a.release('bet:released', begin.token);
  t.equal((await a.begin('bet:released', 'fp', options)).kind, 'acquired');
});

t.test('bounded: the least recently used entry goes first', async (t) => {
  const a = gateway(2);
  await answer(a, 'bet:1', ok);
  await answer(a, 'bet:2', ok);
  await a.begin('bet:1', 'fp', options); // bet:1 used last
  await answer(a, 'bet:3', ok);
  t.equal(a.size, 2);
  await redis.del(`${prefix}ans:bet:1`, `${prefix}ans:bet:2`, `${prefix}ans:bet:3`);
  t.equal((await a.begin('bet:1', 'fp', options)).kind, 'replay', 'kept');
  t.equal((await a.begin('bet:3', 'fp', options)).kind, 'replay', 'kept');
  t.equal((await a.begin('bet:2', 'fp', options)).kind, 'acquired', 'dropped: Redis decides again');
});
