/**
 * LateAnswerWriter against the real Redis behind a TCP proxy: an answer given while Redis was
 * unreachable reaches the store once Redis is back, and a copy then replays it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { createRedisClient, waitForRedis } from '../redis.js';
import { randomPrefix } from '../test-helpers/index.js';
import { startTcpProxy } from '../test-helpers/tcp-proxy.js';
import { LateAnswerWriter } from './late-answers.js';
import { RedisIdempotencyStore } from './redis-store.js';

const REDIS_URL = new URL(process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const proxy = await startTcpProxy(REDIS_URL.hostname, Number(REDIS_URL.port || 6379));
const redis = createRedisClient(proxy.url('redis'));
await waitForRedis(redis);
const prefix = randomPrefix();
const store = new RedisIdempotencyStore({ redis, keyPrefix: prefix, ttlSeconds: 60 });
t.teardown(async () => {
  await proxy.start();
  await waitForRedis(redis, 5000).catch(() => {});
  const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit().catch(() => redis.disconnect());
  await proxy.close();
});

const opts = { waitMs: 200, lockTtlMs: 60_000 };
const ok = { status: 200, body: '{"balance":"90.00","currency":"USD","tx_id":"t1"}' };

t.test('an answer given while Redis was down is stored once Redis is back', async (t) => {
  const stored: string[] = [];
  const writer = new LateAnswerWriter({ store, retryMs: 50, onStored: (entry, result) => stored.push(result) });
  t.teardown(() => writer.close(0));

  // The begin that Redis never answered in time: with the proxy down it fails at once.
  await proxy.stop();
  const begin = await store.begin('bet:late-1', 'fp', opts);
  t.equal(begin.kind, 'bypass', 'Redis down: the request goes to the wallet without the store');
  writer.add({
    key: 'bet:late-1',
    ...(begin.kind === 'bypass' && begin.token ? { token: begin.token } : {}),
    fingerprint: 'fp',
    answer: ok,
  });
  await sleep(300);
  t.equal(writer.size, 1, 'kept while Redis is unreachable');
  t.same(stored, []);

  await proxy.start();
  for (let i = 0; i < 100 && writer.size > 0; i++) await sleep(50);
  t.equal(writer.size, 0, 'written once Redis answers');
  t.same(stored, ['stored']);
  t.same(
    await store.begin('bet:late-1', 'fp', opts),
    { kind: 'replay', answer: ok, waited: false },
    'a copy replays it',
  );
});

t.test('a late answer never replaces the answer another request stored meanwhile', async (t) => {
  const writer = new LateAnswerWriter({ store, retryMs: 50 });
  t.teardown(() => writer.close(0));
  const other = { status: 402, body: '{"error":"insufficient funds","code":"INSUFFICIENT_FUNDS"}' };
  const first = await store.begin('bet:late-2', 'fp', opts);
  if (first.kind !== 'acquired') return t.fail('not acquired');

  writer.add({ key: 'bet:late-2', token: 'someone-else', fingerprint: 'fp', answer: ok });
  await sleep(200);
  t.equal(writer.size, 1, 'waits while the owner runs');
  await store.complete('bet:late-2', first.token, 'fp', other);
  for (let i = 0; i < 100 && writer.size > 0; i++) await sleep(50);
  t.equal(writer.size, 0);
  t.same(await store.begin('bet:late-2', 'fp', opts), { kind: 'replay', answer: other, waited: false });
});

t.test('bounded: the oldest entries go first, and old entries are given up', async (t) => {
  await proxy.stop();
  t.teardown(() => proxy.start());
  const writer = new LateAnswerWriter({ store, retryMs: 50, maxEntries: 2, maxAgeMs: 200 });
  t.teardown(() => writer.close(0));
  for (const key of ['bet:b1', 'bet:b2', 'bet:b3']) writer.add({ key, fingerprint: 'fp', answer: ok });
  t.equal(writer.size, 2, 'capped');
  await sleep(300);
  await proxy.start();
  await waitForRedis(redis, 5000);
  await writer.flush();
  t.equal(writer.size, 0, 'too old to matter: given up');
  t.equal(
    (await store.begin('bet:b2', 'fp', opts)).kind,
    'acquired',
    'not written (the wallet still replays the outcome)',
  );
});

t.test('a request answered without storing drops the lock its late-running begin took', async (t) => {
  const writer = new LateAnswerWriter({ store, retryMs: 50 });
  t.teardown(() => writer.close(0));
  // The begin ran after all (as Redis does with a script its client gave up on): the lock is there.
  const late = await store.begin('bet:late-3', 'variant-fp', opts);
  if (late.kind !== 'acquired') return t.fail('not acquired');
  t.equal(
    (await store.begin('bet:late-3', 'original-fp', { ...opts, waitMs: 0 })).kind,
    'mismatch',
    'the lock refuses copies',
  );

  await proxy.stop();
  writer.add({ key: 'bet:late-3', token: late.token });
  await sleep(200);
  t.equal(writer.size, 1, 'kept while Redis is unreachable');
  await proxy.start();
  for (let i = 0; i < 100 && writer.size > 0; i++) await sleep(50);
  t.equal(writer.size, 0);
  t.equal((await store.begin('bet:late-3', 'original-fp', opts)).kind, 'acquired', 'the key is free again');
});
