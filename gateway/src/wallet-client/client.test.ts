import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { GrpcStatus, WALLET_ERROR_CODE_KEY } from '@phia/proto';
import { toWalletError, WalletClient } from './client.js';

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
