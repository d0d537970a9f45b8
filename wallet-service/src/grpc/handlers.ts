import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CallContext, Ledger } from '../ledger/ledger.js';
import type { WalletMetrics } from '../metrics.js';
import { toGrpcError } from './status.js';

type Handler = (request: never, ctx: CallContext) => Promise<unknown>;

/** The caller's deadline as epoch ms, or undefined when the call has none. */
function callDeadline(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : undefined;
}

/**
 * Wraps ledger methods as grpc-js unary handlers: deadline in, answer or mapped error out, one
 * metric and (for failures) one log line per call.
 */
function unary(
  method: string,
  handler: Handler,
  deps: { logger: Logger; metrics: WalletMetrics },
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const requestId = call.metadata.get('x-request-id')[0]?.toString();
    const finish = (code: string) => {
      deps.metrics.calls.inc({ method, code });
      deps.metrics.callSeconds.observe({ method }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    handler(call.request as never, { deadline: callDeadline(call) }).then(
      (reply) => {
        finish('OK');
        callback(null, reply ?? {});
      },
      (error: unknown) => {
        const mapped = toGrpcError(error);
        finish(mapped.code);
        if (mapped.unexpected) deps.logger.error({ err: error, method, requestId }, 'wallet call failed');
        else deps.logger.debug({ method, requestId, code: mapped.code }, 'wallet call declined');
        callback(mapped.grpcError);
        return;
      },
    );
  };
}

export function walletHandlers(
  ledger: Ledger,
  deps: { logger: Logger; metrics: WalletMetrics },
): grpc.UntypedServiceImplementation {
  return {
    GetBalance: unary('GetBalance', (req, ctx) => ledger.getBalance(req, ctx), deps),
    Bet: unary('Bet', (req, ctx) => ledger.bet(req, ctx), deps),
    Win: unary('Win', (req, ctx) => ledger.win(req, ctx), deps),
    Refund: unary('Refund', (req, ctx) => ledger.refund(req, ctx), deps),
    Void: unary('Void', (req, ctx) => ledger.voidTransaction(req, ctx), deps),
    Deposit: unary('Deposit', (req, ctx) => ledger.deposit(req, ctx), deps),
    Withdraw: unary('Withdraw', (req, ctx) => ledger.withdraw(req, ctx), deps),
    OpenSession: unary('OpenSession', (req, ctx) => ledger.openSession(req, ctx), deps),
    CloseSession: unary('CloseSession', async (req, ctx) => ledger.closeSession(req, ctx), deps),
    SetAccountStatus: unary('SetAccountStatus', (req, ctx) => ledger.setAccountStatus(req, ctx), deps),
    GetTransaction: unary('GetTransaction', (req) => ledger.getTransaction(req), deps),
  };
}
