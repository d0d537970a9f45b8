import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import pino from 'pino';
import t from 'tap';
import { createTestSchema } from '../../../test/helpers/postgres.js';
import { walletTestClient, WalletCallError } from '../../../test/helpers/wallet-client.js';
import { sleep } from '../test-helpers/ledger.js';
import { startWalletServer, type WalletServer } from '../wallet.js';
import { metadataDeadline } from './handlers.js';

const schema = await createTestSchema('grpc');
t.teardown(() => schema.drop());

let slowCommitMs = 0;
/** `slowCommits`: each call waits slowCommitMs at its COMMIT point (a test seam: BEGIN … COMMIT around it). */
async function start(options: { slowCommits?: boolean } = {}): Promise<WalletServer> {
  return startWalletServer({
    host: '127.0.0.1',
    port: 0,
    databaseUrl: schema.databaseUrl,
    schema: schema.schema,
    metricsPort: 0,
    hooks: options.slowCommits
      ? {
          beforeCommit: async () => {
            if (slowCommitMs > 0) await sleep(slowCommitMs);
          },
        }
      : undefined,
  });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    return error instanceof WalletCallError ? error.code || `grpc-${error.grpcCode}` : String(error);
  }
}

t.test('reflection lists the wallet and health services; health is SERVING', async (t) => {
  const wallet = await start();
  t.teardown(() => wallet.close());
  const require = createRequire(import.meta.url);
  const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new loaded.grpc.reflection.v1.ServerReflection(wallet.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const stream = (
    client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, object> }
  ).ServerReflectionInfo();
  const reply = await new Promise<{ list_services_response?: { service: { name: string }[] } }>((resolve, reject) => {
    stream.on('data', resolve);
    stream.on('error', reject);
    stream.write({ list_services: '' });
  });
  stream.end();
  const names = reply.list_services_response?.service.map((entry) => entry.name) ?? [];
  t.ok(names.includes('wallet.v1.Wallet'), `listed: ${names.join(', ')}`);
  t.ok(names.includes('grpc.health.v1.Health'));

  const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
  const health = new Health(wallet.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    check(request: object, callback: (error: Error | null, reply: { status: string }) => void): void;
  };
  t.teardown(() => health.close());
  const status = await new Promise<string>((resolve, reject) =>
    health.check({ service: 'wallet.v1.Wallet' }, (error, reply) => (error ? reject(error) : resolve(reply.status))),
  );
  t.equal(status, 'SERVING');
});

t.test('every method over gRPC; declines carry the contract code in metadata', async (t) => {
  const wallet = await start();
  const client = walletTestClient(wallet.address);
  t.teardown(async () => {
    client.close();
    await wallet.close();
  });
  const deposit = await client.Deposit({ tx_id: 'g-dep-1', user_id: 'g1', currency: 'USD', amount: '100.00' });
  t.same(deposit, { balance: '100.00', currency: 'USD', tx_id: 'g-dep-1' });
  const session = await client.OpenSession({ user_id: 'g1', currency: 'USD', ttl_seconds: 60 });
  t.match(session, { session_id: /^[\w-]{20,}$/, expires_at: /^\d{4}-\d\d-\d\dT/ });
  const bet = { tx_id: 'g-bet-1', user_id: 'g1', currency: 'USD', amount: '10', round_id: 'r1', game_session_id: 'gs' };
  t.same(await client.Bet({ ...bet, session_id: session.session_id }), {
    balance: '90.00',
    currency: 'USD',
    tx_id: 'g-bet-1',
  });
  t.same(await client.GetBalance({ user_id: 'g1', currency: 'USD' }), { balance: '90.00', currency: 'USD' });
  t.equal((await client.Win({ ...bet, tx_id: 'g-win-1', amount: '5.5', bet_tx_id: 'g-bet-1' })).balance, '95.50');
  t.equal((await client.Refund({ ...bet, tx_id: 'g-ref-1', amount: '10.00', bet_tx_id: 'g-bet-1' })).balance, '105.50');
  t.equal(
    (await client.Withdraw({ tx_id: 'g-wd-1', user_id: 'g1', currency: 'USD', amount: '0.50' })).balance,
    '105.00',
  );
  t.match(await client.GetTransaction({ kind: 'bet', tx_id: 'g-bet-1' }), {
    status: 'applied',
    amount: '10.00',
    balance: '90.00',
    refunded_amount: '10.00',
  });
  t.same(await client.SetAccountStatus({ user_id: 'g1', currency: 'USD', blocked: true }), {
    user_id: 'g1',
    currency: 'USD',
    blocked: true,
  });
  t.equal(await codeOf(client.Bet({ ...bet, tx_id: 'g-bet-2' })), 'PLAYER_BLOCKED');
  await client.SetAccountStatus({ user_id: 'g1', currency: 'USD', blocked: false });
  t.same(await client.CloseSession({ session_id: session.session_id }), {});
  t.equal(await codeOf(client.Bet({ ...bet, tx_id: 'g-bet-3', session_id: session.session_id })), 'SESSION_NOT_FOUND');
  t.equal(await codeOf(client.Bet({ ...bet, tx_id: 'g-bet-4', amount: '1000' })), 'INSUFFICIENT_FUNDS');
  t.equal(await codeOf(client.Bet({ ...bet, amount: '11' })), 'IDEMPOTENCY_MISMATCH');
  t.equal(await codeOf(client.Bet({ ...bet, tx_id: 'g-bet-5', amount: '1.001' })), 'INVALID_REQUEST');
  t.match(await client.Void({ kind: 'win', tx_id: 'g-win-1' }), { outcome: 'reversed', balance: '99.50' });

  const failure = await client.Bet({ ...bet, tx_id: 'g-bet-6', amount: '1000' }).catch((error: unknown) => error);
  t.equal((failure as WalletCallError).grpcCode, grpc.status.FAILED_PRECONDITION);

  const metrics = await fetch(`http://127.0.0.1:${wallet.metricsPort}/metrics`).then((response) => response.text());
  t.match(metrics, /wallet_calls_total\{method="Bet",code="INSUFFICIENT_FUNDS"\} 2/);
  // Every call is counted once by its code and timed once by its method.
  const betCalls = [...metrics.matchAll(/^wallet_calls_total\{method="Bet",code="(\w+)"\} (\d+)$/gm)];
  const betTimed = /^wallet_call_duration_seconds_count\{method="Bet"\} (\d+)$/m.exec(metrics)?.[1];
  t.same(
    betCalls.map((row) => row[1]).sort(),
    ['IDEMPOTENCY_MISMATCH', 'INSUFFICIENT_FUNDS', 'INVALID_REQUEST', 'OK', 'PLAYER_BLOCKED', 'SESSION_NOT_FOUND'],
    'Bet calls counted by their code',
  );
  t.equal(
    Number(betTimed),
    betCalls.reduce((sum, row) => sum + Number(row[2]), 0),
    'each Bet call timed once',
  );
  t.match(metrics, /wallet_db_transaction_duration_seconds_count\{outcome="commit"\} [1-9]/);
});

t.test('a duplicate after a restart gets the stored answer, declines included', async (t) => {
  let wallet = await start();
  let client = walletTestClient(wallet.address);
  await client.Deposit({ tx_id: 'r-dep', user_id: 'r1', currency: 'EUR', amount: '20.00' });
  const bet = { tx_id: 'r-bet', user_id: 'r1', currency: 'EUR', amount: '5.00', round_id: 'r', game_session_id: 'g' };
  const first = await client.Bet(bet);
  t.equal(await codeOf(client.Bet({ ...bet, tx_id: 'r-big', amount: '500.00' })), 'INSUFFICIENT_FUNDS');
  client.close();
  await wallet.forceClose(); // as if the process died

  wallet = await start();
  client = walletTestClient(wallet.address);
  t.teardown(async () => {
    client.close();
    await wallet.close();
  });
  await client.Deposit({ tx_id: 'r-dep-2', user_id: 'r1', currency: 'EUR', amount: '1000.00' });
  t.same(await client.Bet(bet), first, 'same answer as before the restart');
  t.equal(await codeOf(client.Bet({ ...bet, tx_id: 'r-big', amount: '500.00' })), 'INSUFFICIENT_FUNDS');
  t.equal((await client.GetBalance({ user_id: 'r1', currency: 'EUR' })).balance, '1015.00');
});

t.test('the wallet reads the gRPC deadline and commits nothing once it has passed', async (t) => {
  const wallet = await start({ slowCommits: true });
  const client = walletTestClient(wallet.address);
  t.teardown(async () => {
    client.close();
    await wallet.close();
  });
  await client.Deposit({ tx_id: 'd-dep', user_id: 'd1', currency: 'USD', amount: '20.00' });
  slowCommitMs = 400;
  const bet = { tx_id: 'd-bet', user_id: 'd1', currency: 'USD', amount: '5.00', round_id: 'r', game_session_id: 'g' };
  const failure = (await client.Bet(bet, { deadlineMs: 250 }).catch((error: unknown) => error)) as WalletCallError;
  t.equal(failure.grpcCode, grpc.status.DEADLINE_EXCEEDED);
  await sleep(300); // let the server side reach its own check and roll back
  slowCommitMs = 0;
  t.equal((await client.GetBalance({ user_id: 'd1', currency: 'USD' })).balance, '20.00');
  t.equal(await codeOf(client.GetTransaction({ kind: 'bet', tx_id: 'd-bet' })), 'ACCOUNT_NOT_FOUND');
});

t.test('x-deadline-ms: a call whose gateway deadline has passed commits nothing', async (t) => {
  const wallet = await start();
  const client = walletTestClient(wallet.address);
  t.teardown(async () => {
    client.close();
    await wallet.close();
  });
  await client.Deposit({ tx_id: 'x-dep', user_id: 'x1', currency: 'USD', amount: '20.00' });
  const bet = { tx_id: 'x-bet', user_id: 'x1', currency: 'USD', amount: '5.00', round_id: 'r', game_session_id: 'g' };
  // The gRPC deadline alone leaves plenty of time; the gateway's own deadline is already gone.
  const late = { deadlineMs: 5000, metadata: { 'x-deadline-ms': String(Date.now() - 1) } };
  t.equal(await codeOf(client.Bet(bet, late)), 'WALLET_TIMEOUT');
  t.equal(await codeOf(client.GetTransaction({ kind: 'bet', tx_id: 'x-bet' })), 'ACCOUNT_NOT_FOUND', 'nothing stored');
  t.equal((await client.GetBalance({ user_id: 'x1', currency: 'USD' })).balance, '20.00', 'nothing debited');
  t.equal(await codeOf(client.GetBalance({ user_id: 'x1', currency: 'USD' }, late)), 'WALLET_TIMEOUT');

  // A deadline in the future within 60 s is used as given.
  const ahead = { deadlineMs: 5000, metadata: { 'x-deadline-ms': String(Date.now() + 10_000) } };
  t.equal((await client.Bet({ ...bet, tx_id: 'x-ahead' }, ahead)).tx_id, 'x-ahead');
  t.equal((await client.GetBalance({ user_id: 'x1', currency: 'USD' })).balance, '15.00');
});

t.test('a malformed or absurd x-deadline-ms is refused with INVALID_REQUEST, logged, and moves nothing', async (t) => {
  const logged: { msg?: string; method?: string; 'x-deadline-ms'?: string }[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  const wallet = await startWalletServer({
    host: '127.0.0.1',
    port: 0,
    databaseUrl: schema.databaseUrl,
    schema: schema.schema,
    metricsPort: 0,
    logger,
  });
  const client = walletTestClient(wallet.address);
  t.teardown(async () => {
    client.close();
    await wallet.close();
  });
  await client.Deposit({ tx_id: 'm-dep', user_id: 'm1', currency: 'USD', amount: '20.00' });
  const bet = { tx_id: 'm-bet', user_id: 'm1', currency: 'USD', amount: '5.00', round_id: 'r', game_session_id: 'g' };
  const now = Date.now();
  const refused = [`${now + 1000}.7227`, 'soon', '-5', '', '0x10', '1e12', String(now + 61_000), '9999999999999999'];
  for (const [index, value] of refused.entries()) {
    const failure = (await client
      .Bet({ ...bet, tx_id: `m-bad-${index}` }, { deadlineMs: 5000, metadata: { 'x-deadline-ms': value } })
      .catch((error: unknown) => error)) as WalletCallError;
    t.equal(failure.code, 'INVALID_REQUEST', `x-deadline-ms "${value}" refused`);
    t.equal(failure.grpcCode, grpc.status.INVALID_ARGUMENT);
    t.match(failure.message, /x-deadline-ms/, 'the answer names the header');
    t.equal(await codeOf(client.GetTransaction({ kind: 'bet', tx_id: `m-bad-${index}` })), 'ACCOUNT_NOT_FOUND');
  }
  t.equal(
    await codeOf(client.GetBalance({ user_id: 'm1', currency: 'USD' }, { metadata: { 'x-deadline-ms': 'x' } })),
    'INVALID_REQUEST',
  );
  t.equal((await client.GetBalance({ user_id: 'm1', currency: 'USD' })).balance, '20.00', 'nothing debited');
  t.equal(logged.length, refused.length + 1, 'each refusal is logged');
  t.match(logged[0], { msg: 'malformed deadline refused', method: 'Bet', 'x-deadline-ms': refused[0] });
  // Without the header, the gRPC deadline alone counts.
  t.equal((await client.Bet({ ...bet, tx_id: 'm-ok' })).tx_id, 'm-ok');
});

t.test('metadataDeadline parses integer epoch ms; refuses malformed and absurd values', async (t) => {
  const now = 1_800_000_000_000;
  t.equal(metadataDeadline(undefined, now), undefined, 'absent: no deadline of its own');
  t.equal(metadataDeadline(String(now - 5), now), now - 5, 'a deadline already passed is valid');
  t.equal(metadataDeadline(Buffer.from(String(now + 59_000)), now), now + 59_000);
  t.throws(() => metadataDeadline(String(now + 61_000), now), { code: 'INVALID_REQUEST' }, 'more than 60 s ahead');
  for (const bad of ['', 'abc', '1e12', '1.5', `${now}.5`, '-1', ' 1', '99999999999999999', 5, Buffer.from('x')]) {
    t.throws(() => metadataDeadline(bad, now), { code: 'INVALID_REQUEST' }, `${String(bad)} refused`);
  }
});

t.test('graceful close finishes running calls and refuses new ones', async (t) => {
  const wallet = await start({ slowCommits: true });
  const client = walletTestClient(wallet.address);
  t.teardown(() => client.close());
  await client.Deposit({ tx_id: 's-dep', user_id: 's1', currency: 'USD', amount: '20.00' });
  slowCommitMs = 300;
  const running = client.Bet({
    tx_id: 's-bet',
    user_id: 's1',
    currency: 'USD',
    amount: '5',
    round_id: 'r',
    game_session_id: 'g',
  });
  await sleep(100);
  const closing = wallet.close();
  t.equal((await running).balance, '15.00', 'the running call was answered');
  await closing;
  slowCommitMs = 0;
  t.equal(
    await codeOf(client.GetBalance({ user_id: 's1', currency: 'USD' }, { deadlineMs: 1000 })),
    `grpc-${grpc.status.UNAVAILABLE}`,
  );
});

t.test('before its database is ready the wallet answers UNAVAILABLE, not UNIMPLEMENTED', async (t) => {
  // Found by the chaos soak: during a restart the port was open before the Wallet service was added,
  // so calls got UNIMPLEMENTED and the gateway answered 500 instead of 503.
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  // Accepts connections and never answers: a database that hangs.
  const silent = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const dbPort = (silent.address() as { port: number }).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const grpcPort = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  const starting = startWalletServer({
    host: '127.0.0.1',
    port: grpcPort,
    databaseUrl: `postgres://nobody@127.0.0.1:${dbPort}/none`,
    schema: schema.schema,
  }).then(
    async (server) => {
      await server.close();
      return 'started';
    },
    () => 'failed',
  );
  const client = walletTestClient(`127.0.0.1:${grpcPort}`);
  let seen = '';
  try {
    for (let i = 0; i < 50 && !seen.includes('database is not ready'); i++) {
      try {
        await client.GetBalance({ user_id: 'u', currency: 'USD' });
        seen = 'OK';
      } catch (error) {
        seen = error instanceof WalletCallError ? `${error.grpcCode} ${error.message}` : String(error);
      }
      if (!seen.includes('database is not ready')) await sleep(100);
    }
  } finally {
    client.close();
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
  t.match(seen, new RegExp(`^${grpc.status.UNAVAILABLE} .*database is not ready`), 'UNAVAILABLE while starting');
  t.equal(await starting, 'failed', 'the start fails once the database connection does');
});
