import t, { type Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { GrpcStatus, PROTO_LOADER_OPTIONS, WALLET_ERROR_CODE_KEY, WALLET_PROTO_PATH } from '@phia/proto';
import { DEADLINE_METADATA_KEY, toWalletError, WalletClient, walletDecisionReserveMs } from './client.js';

function serviceError(code: number, walletCode?: string, details = 'details'): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (walletCode !== undefined) metadata.set(WALLET_ERROR_CODE_KEY, walletCode);
  return Object.assign(new Error('x'), { code, details, metadata }) as grpc.ServiceError;
}

t.test('grpc errors map to contract codes', async (t) => {
  const cases: [number, string | undefined, string, boolean][] = [
    [GrpcStatus.FAILED_PRECONDITION, 'INSUFFICIENT_FUNDS', 'INSUFFICIENT_FUNDS', true],
    [GrpcStatus.UNAUTHENTICATED, 'SESSION_NOT_FOUND', 'SESSION_NOT_FOUND', true],
    [GrpcStatus.DEADLINE_EXCEEDED, 'WALLET_TIMEOUT', 'WALLET_TIMEOUT', true],
    [GrpcStatus.DEADLINE_EXCEEDED, undefined, 'WALLET_TIMEOUT', false],
    [GrpcStatus.UNAVAILABLE, undefined, 'WALLET_UNAVAILABLE', false],
    [GrpcStatus.RESOURCE_EXHAUSTED, undefined, 'WALLET_UNAVAILABLE', false],
    [GrpcStatus.CANCELLED, undefined, 'WALLET_UNAVAILABLE', false],
    [GrpcStatus.INTERNAL, undefined, 'INTERNAL', false],
    [GrpcStatus.UNKNOWN, 'NOT_A_CODE', 'INTERNAL', false],
    [GrpcStatus.UNIMPLEMENTED, undefined, 'INTERNAL', false],
  ];
  for (const [grpcCode, walletCode, expected, decided] of cases) {
    const error = toWalletError(serviceError(grpcCode, walletCode));
    t.equal(error.code, expected, `${grpcCode}/${walletCode ?? '-'} → ${expected}`);
    t.equal(error.decidedByWallet, decided);
    t.equal(error.grpcCode, grpcCode);
  }
  t.equal(toWalletError(new Error('weird')).code, 'INTERNAL');
});

t.test('a reset HTTP/2 stream or session is WALLET_UNAVAILABLE, not INTERNAL', async (t) => {
  // grpc-js's texts when the server resets the stream or closes the session (seen under overload).
  for (const details of [
    'Received RST_STREAM with code 2 triggered by internal client error: Session closed with error code 2',
    'Received RST_STREAM with code 2 (Internal server error)',
    'Session closed with error code 2',
  ]) {
    const error = toWalletError(serviceError(GrpcStatus.INTERNAL, undefined, details));
    t.equal(error.code, 'WALLET_UNAVAILABLE', details);
    t.equal(error.decidedByWallet, false);
  }
  t.equal(toWalletError(serviceError(GrpcStatus.INTERNAL, undefined, 'boom')).code, 'INTERNAL');
  t.equal(
    toWalletError(serviceError(GrpcStatus.INTERNAL, 'INTERNAL', 'Session closed')).code,
    'INTERNAL',
    "the wallet's own code wins",
  );
});

t.test('a closed client answers WALLET_UNAVAILABLE at once', async (t) => {
  const client = new WalletClient({ address: '127.0.0.1:1', deadlineMs: 200 });
  const started = Date.now();
  await t.rejects(client.getBalance({ user_id: 'u', currency: 'USD' }), { code: 'WALLET_UNAVAILABLE' });
  client.close();
  await t.rejects(client.getBalance({ user_id: 'u', currency: 'USD' }), { code: 'WALLET_UNAVAILABLE' });
  t.ok(Date.now() - started < 1000);
  t.equal(await client.ping(50), false);
});

t.test('while overloaded, balance and money calls are refused at once; other calls go through', async (t) => {
  let overloaded = true;
  const client = new WalletClient({
    address: '127.0.0.1:1',
    deadlineMs: 200,
    maxInFlight: 10,
    isOverloaded: () => overloaded,
  });
  t.teardown(() => client.close());
  const refused = { code: 'WALLET_UNAVAILABLE', grpcCode: GrpcStatus.RESOURCE_EXHAUSTED, decidedByWallet: false };
  await t.rejects(client.getBalance({ user_id: 'u', currency: 'USD' }), refused);
  const money = { tx_id: 't', user_id: 'u', currency: 'USD', amount: '1.00', round_id: 'r', game_session_id: 'g' };
  await t.rejects(client.money('Bet', money), refused);
  t.equal(client.inFlight, 0);
  // A void is not a PHIA request: never refused by admission (here the address is closed: UNAVAILABLE).
  await t.rejects(client.void({ kind: 'bet', tx_id: 't' }), {
    code: 'WALLET_UNAVAILABLE',
    grpcCode: GrpcStatus.UNAVAILABLE,
  });
  overloaded = false;
  await t.rejects(client.getBalance({ user_id: 'u', currency: 'USD' }), {
    code: 'WALLET_UNAVAILABLE',
    grpcCode: GrpcStatus.UNAVAILABLE,
  });
  t.equal(client.inFlight, 0, 'a finished call leaves the count');
});

/** A fake wallet whose GetBalance records the x-deadline-ms text and the gRPC deadline of each call. */
async function recordingWallet(t: Test) {
  const definition = protoLoader.loadSync(WALLET_PROTO_PATH, { ...PROTO_LOADER_OPTIONS });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    wallet: { v1: { Wallet: grpc.ServiceClientConstructor } };
  };
  const seen: { header: string; decideBy: number; deadline: number }[] = [];
  const server = new grpc.Server();
  server.addService(loaded.wallet.v1.Wallet.service, {
    GetBalance: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const deadline = call.getDeadline();
      const header = String(call.metadata.get(DEADLINE_METADATA_KEY)[0]);
      seen.push({
        header,
        decideBy: Number(header),
        deadline: deadline instanceof Date ? deadline.getTime() : Number(deadline),
      });
      callback(null, { user_id: 'u', currency: 'USD', balance: '1.00' });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  t.teardown(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  const client = new WalletClient({ address: `127.0.0.1:${port}`, deadlineMs: 2000 });
  t.teardown(() => client.close());
  return { client, seen };
}

t.test('the wallet is told to decide before the gateway answers: x-deadline-ms leaves a reserve', async (t) => {
  const { client, seen } = await recordingWallet(t);
  const arrivedAt = Date.now();
  await client.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt });
  await client.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt, deadlineMs: 400 });
  t.equal(seen.length, 2);
  t.equal(
    seen[0]?.decideBy,
    arrivedAt + 2000 - 250,
    'a 2 s budget: the wallet decides 250 ms before the gateway answers',
  );
  t.equal(seen[1]?.decideBy, arrivedAt + 400 - 100, 'a short budget keeps three quarters of it for the wallet');
  // The gRPC deadline itself stays the gateway's: it travels as a timeout, so the server's copy is
  // later by the transit (a first call on a loaded machine), but well inside the 250 ms reserve.
  const skew = (seen[0]?.deadline ?? 0) - (arrivedAt + 2000);
  t.ok(skew > -50 && skew < 200, `grpc deadline is the gateway deadline (off by ${skew} ms)`);
  t.equal(walletDecisionReserveMs(1000), 250);
  t.equal(walletDecisionReserveMs(100), 25);
});

t.test('x-deadline-ms is whole epoch milliseconds, rounded down, whatever the caller gives', async (t) => {
  const { client, seen } = await recordingWallet(t);
  const arrivedAt = Date.now() + 0.7227;
  await client.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt });
  await client.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt, deadlineMs: 1000.9 });
  t.match(seen[0]?.header, /^[0-9]{13}$/, `a fractional arrival is sent as an integer: ${seen[0]?.header}`);
  t.equal(seen[0]?.decideBy, Math.floor(arrivedAt) + 2000 - 250, 'never later than the fraction would say');
  t.match(seen[1]?.header, /^[0-9]{13}$/, `a fractional budget too: ${seen[1]?.header}`);
  t.equal(seen[1]?.decideBy, Math.floor(arrivedAt + 1000.9) - 250);

  await t.rejects(
    client.getBalance({ user_id: 'u', currency: 'USD' }, { arrivedAt: Number.NaN }),
    { code: 'INTERNAL' },
    'an arrival that is not a number is refused before any call',
  );
  t.equal(seen.length, 2, 'the wallet was not called');
});
