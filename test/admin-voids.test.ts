/**
 * phia-admin voids list|retry against real Redis and a real wallet: a void queued by the gateway's own
 * outbox code shows with its age, attempts and next attempt; retry makes it due now; once the wallet
 * confirms it, it leaves the outbox with its enqueue time. The same through a Redis Cluster and a
 * Sentinel set. Exit codes for people and scripts.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { voidOutboxKeys } from '@phia/proto';
import { Redis } from 'ioredis';
import t from 'tap';
import { topologyClients } from '../gateway/src/test-helpers/redis-topologies.js';
import { RedisVoidBackend, type VoidJob } from '../gateway/src/voids/backends.js';
import { startWalletServer } from '../wallet-service/src/wallet.js';
import { freePort } from './chaos/processes.js';
import { createTestSchema } from './helpers/postgres.js';
import { walletTestClient } from './helpers/wallet-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ADMIN = join(ROOT, 'admin/bin/phia-admin.js');
const REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
t.setTimeout(120_000);

const prefix = `t:${randomBytes(4).toString('hex')}:`;
const keys = voidOutboxKeys(prefix);
const redis = new Redis(REDIS_URL);
t.teardown(async () => {
  await redis.del(keys.jobs, keys.attempts, keys.enqueued, `${prefix}ans:bet:v-bet`);
  redis.disconnect();
});
const schema = await createTestSchema('admin_voids');
t.teardown(() => schema.drop());
const wallet = await startWalletServer({ databaseUrl: schema.databaseUrl, schema: schema.schema });
t.teardown(() => wallet.close());
const client = walletTestClient(wallet.address);
t.teardown(() => client.close());

function admin(args: string[], env: Record<string, string> = { REDIS_URL }) {
  const run = spawnSync(process.execPath, [ADMIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: run.status, out: run.stdout, err: run.stderr };
}

// A bet that took effect, answered with an error: the gateway queues its void (retried in an hour).
await client.Deposit({ tx_id: 'v-dep', user_id: 'v1', currency: 'USD', amount: '10.00' });
await client.Bet({
  tx_id: 'v-bet',
  user_id: 'v1',
  currency: 'USD',
  amount: '2.00',
  round_id: 'r',
  game_session_id: 'g',
});
const backend = new RedisVoidBackend(redis, prefix);
const job: VoidJob = { kind: 'bet', tx_id: 'v-bet', error_code: 'WALLET_TIMEOUT', fingerprint: '', attempt_id: '' };
const queuedFrom = Date.now();
await backend.add(job, Date.now() + 3_600_000);
const queuedBy = Date.now();

t.test('voids list: each void with its age, attempts and next attempt', async (t) => {
  const listed = admin(['voids', 'list', '--prefix', prefix, '--json']);
  t.equal(listed.code, 0, listed.err);
  const voids = JSON.parse(listed.out) as Array<Record<string, unknown>>;
  t.equal(voids.length, 1);
  t.match(voids[0], { kind: 'bet', tx_id: 'v-bet', error_code: 'WALLET_TIMEOUT', attempts: 0 });
  const enqueuedAt = Date.parse(String(voids[0]?.enqueued_at));
  t.ok(enqueuedAt >= queuedFrom && enqueuedAt <= queuedBy, 'enqueued_at is when the gateway queued it');
  t.ok(Number(voids[0]?.age_seconds) >= 0, 'an age');
  t.ok(Date.parse(String(voids[0]?.next_attempt_at)) > Date.now() + 3_000_000, 'next attempt in about an hour');

  const human = admin(['voids', 'list', '--prefix', prefix]);
  t.equal(human.code, 0);
  t.match(
    human.out,
    /^1 pending void\nkind +tx_id +error_code +age +attempts +next_attempt\nbet +v-bet +WALLET_TIMEOUT +\d+s +0 /,
  );
});

t.test('voids retry: due now, delivered by the next pass, then gone from the outbox', async (t) => {
  t.equal(admin(['voids', 'retry', 'bet', 'nope', '--prefix', prefix]).code, 1, 'exit 1: no such void');
  const retried = admin(['voids', 'retry', 'bet', 'v-bet', '--prefix', prefix]);
  t.equal(retried.code, 0, retried.err);
  t.match(retried.out, /^1 void due now/);
  t.ok(Number(await redis.zscore(keys.jobs, JSON.stringify(['bet', 'v-bet', 'WALLET_TIMEOUT', '', '']))) <= Date.now());

  // What a gateway's retrier does at its next poll: claim the due void, send it, forget it.
  const [claimed] = await backend.claimDue(Date.now(), 10, 30_000);
  t.same(claimed?.job, job, 'the retried void is due');
  t.match(await client.Void({ kind: 'bet', tx_id: 'v-bet', error_code: 'WALLET_TIMEOUT' }), { outcome: 'reversed' });
  await backend.done(job, 'drop');
  t.equal(await client.GetBalance({ user_id: 'v1', currency: 'USD' }).then((r) => r.balance), '10.00');

  const listed = admin(['voids', 'list', '--prefix', prefix, '--json']);
  t.same(JSON.parse(listed.out), []);
  t.equal(await redis.hlen(keys.enqueued), 0, 'its enqueue time went with it');
  t.equal(admin(['voids', 'list', '--prefix', prefix]).out.trim(), '0 pending voids\n(none)');
});

t.test('voids: exit 2 without REDIS_URL, exit 3 when Redis is out of reach', async (t) => {
  const usage = admin(['voids', 'list'], {});
  t.equal(usage.code, 2);
  t.match(usage.err, /set REDIS_URL/);
  const down = admin(['voids', 'list'], { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
  t.equal(down.code, 3);
  t.match(down.err, /^redis redis:\/\/127\.0\.0\.1:\d+: /);
  const cluster = admin(['voids', 'list'], { REDIS_URL: `redis+cluster://127.0.0.1:${await freePort()}` });
  t.equal(cluster.code, 3, 'a Cluster out of reach too');
  t.equal(admin(['voids', 'list'], { REDIS_URL: 'redis+cluster://nohost' }).code, 2, 'a malformed REDIS_URL');
});

t.test('voids list and retry through a Redis Cluster and a Sentinel set, as the gateways see them', async (t) => {
  const topologies = await topologyClients(t);
  for (const [name, client, url] of topologies) {
    // The gateway's own outbox code writes the void (in a Cluster, under its hash-tagged prefix).
    const outbox = new RedisVoidBackend(client, prefix);
    const clusterJob: VoidJob = { ...job, tx_id: `v-${name}` };
    await outbox.add(clusterJob, Date.now() + 3_600_000);
    const env = { REDIS_URL: url };
    const listed = admin(['voids', 'list', '--prefix', prefix, '--json'], env);
    t.equal(listed.code, 0, `${name}: ${listed.err}`);
    t.match(JSON.parse(listed.out), [{ kind: 'bet', tx_id: `v-${name}`, attempts: 0 }], `${name}: listed`);
    const retried = admin(['voids', 'retry', 'bet', `v-${name}`, '--prefix', prefix, '--json'], env);
    t.equal(retried.code, 0, `${name}: ${retried.err}`);
    const [due] = await outbox.claimDue(Date.now(), 10, 30_000);
    t.same(due?.job, clusterJob, `${name}: the retried void is due for the gateways`);
    await outbox.done(clusterJob, 'drop');
  }
});
