import type * as grpc from '@grpc/grpc-js';
import {
  ERRORS,
  GrpcStatus,
  NOOP_TRACER,
  PhiaError,
  recordErrorCode,
  SPAN_KIND,
  TRACE_ATTR,
  type AdminHandlers,
  type ErrorCode,
  type PhiaTracer,
  type TraceAttributes,
  type TraceSpan,
  type WalletHandlers,
} from '@phia/proto';
import type { Logger } from 'pino';
import type { CallContext, Ledger } from '../ledger/ledger.js';
import type { WalletMetrics } from '../metrics.js';
import { toGrpcError } from './status.js';

/** A ledger method behind one gRPC method: the generated request and reply types of that method. */
type Handler<Request, Reply> = (request: Request, ctx: CallContext) => Promise<Reply>;

export interface HandlerDeps {
  logger: Logger;
  metrics: WalletMetrics;
  /** Tracing on: a server span per call, child of the caller's `traceparent` (default: off). */
  tracer?: PhiaTracer;
}

/**
 * Metadata key of the caller's absolute deadline, sent by the gateway: epoch milliseconds as a decimal
 * integer (1 to 16 digits), the moment the wallet must have decided by.
 */
export const DEADLINE_METADATA_KEY = 'x-deadline-ms';
/**
 * An `x-deadline-ms` further ahead than this is absurd: the gateway's budget is at most 4.5 s
 * (MAX_WALLET_DEADLINE_MS), so the rest is room for clock skew between hosts; past it, a clock or
 * the sender is wrong.
 */
export const MAX_METADATA_DEADLINE_AHEAD_MS = 60_000;

/**
 * The `x-deadline-ms` metadata as epoch ms, or undefined when the call has none. A value that is not
 * a decimal integer, or lies more than MAX_METADATA_DEADLINE_AHEAD_MS ahead, throws INVALID_REQUEST:
 * the header is our own, so a bad one is a bug to refuse loudly, not a hint to ignore (ignoring it
 * let calls commit after the gateway had answered 504). A deadline already passed is valid: the
 * call then ends WALLET_TIMEOUT having committed nothing.
 */
export function metadataDeadline(value: unknown, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = Buffer.isBuffer(value) ? value.toString('utf8') : value;
  if (typeof text !== 'string' || !/^[0-9]{1,16}$/.test(text)) {
    throw new PhiaError('INVALID_REQUEST', `${DEADLINE_METADATA_KEY} must be integer epoch milliseconds`);
  }
  const deadline = Number(text);
  if (deadline > now + MAX_METADATA_DEADLINE_AHEAD_MS) {
    throw new PhiaError(
      'INVALID_REQUEST',
      `${DEADLINE_METADATA_KEY} is ${deadline - now} ms ahead, more than ${MAX_METADATA_DEADLINE_AHEAD_MS}`,
    );
  }
  return deadline;
}

/**
 * The caller's deadline as epoch ms, or undefined when the call has none: the earlier of the gRPC
 * deadline and the gateway's `x-deadline-ms` (the moment its answer leaves anyway). The gRPC deadline
 * travels as a timeout counted from when the call reaches this server, so a call that waited in
 * queues on a loaded machine (or in the socket of a paused wallet) would otherwise look younger than
 * it is and could commit after the gateway already answered 504. Throws on a malformed x-deadline-ms.
 */
function callDeadline(call: grpc.ServerUnaryCall<unknown, unknown>): number | undefined {
  const given = call.getDeadline();
  const grpcDeadline = given instanceof Date ? given.getTime() : Number.isFinite(given) ? given : undefined;
  const fromMetadata = metadataDeadline(call.metadata.get(DEADLINE_METADATA_KEY)[0]);
  if (fromMetadata === undefined) return grpcDeadline;
  return grpcDeadline === undefined ? fromMetadata : Math.min(grpcDeadline, fromMetadata);
}

/** The caller's request id, for log lines (read only when one is written). */
function requestIdOf(call: grpc.ServerUnaryCall<unknown, unknown>): string | undefined {
  return call.metadata.get('x-request-id')[0]?.toString();
}

/**
 * The server span of a call: its parent is the caller's `traceparent`, its attributes the method and
 * the request's tx_id and kind (never an amount or a user).
 */
function startSpan(tracer: PhiaTracer, service: string, method: string, call: grpc.ServerUnaryCall<unknown, unknown>) {
  const request = call.request as { tx_id?: unknown; kind?: unknown } | null;
  const attributes: TraceAttributes = {
    [TRACE_ATTR.rpcSystem]: 'grpc',
    [TRACE_ATTR.rpcService]: service,
    [TRACE_ATTR.rpcMethod]: method,
  };
  if (typeof request?.tx_id === 'string') attributes[TRACE_ATTR.txId] = request.tx_id;
  if (typeof request?.kind === 'string') attributes[TRACE_ATTR.action] = request.kind;
  return tracer.startSpan(`${service}/${method}`, SPAN_KIND.SERVER, attributes, tracer.extract(call.metadata));
}

function endSpan(span: TraceSpan, code: string): void {
  if (code === 'OK') span.setAttribute(TRACE_ATTR.grpcStatus, GrpcStatus.OK);
  else {
    span.setAttribute(TRACE_ATTR.grpcStatus, ERRORS[code as ErrorCode].grpcStatus);
    recordErrorCode(span, code);
  }
  span.end();
}

/**
 * Wraps ledger methods as grpc-js unary handlers: deadline in, answer or mapped error out, one
 * metric, one span when tracing is on, and (for failures) one log line per call.
 */
function unary<Request, Reply>(
  method: string,
  handler: Handler<Request, Reply>,
  deps: HandlerDeps & { service: string },
): grpc.handleUnaryCall<Request, Reply> {
  const tracer = deps.tracer ?? NOOP_TRACER;
  // Label children bound once: prom-client otherwise hashes the label object on every call.
  const seconds = deps.metrics.callSeconds.labels(method);
  const counts = new Map<string, { inc(): void }>();
  const count = (code: string) => {
    let counter = counts.get(code);
    if (counter === undefined) {
      counter = deps.metrics.calls.labels(method, code);
      counts.set(code, counter);
    }
    counter.inc();
  };
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const span = tracer.enabled ? startSpan(tracer, deps.service, method, call) : undefined;
    const finish = (code: string) => {
      count(code);
      seconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      if (span !== undefined) endSpan(span, code);
    };
    let deadline: number | undefined;
    try {
      deadline = callDeadline(call);
    } catch (error) {
      const mapped = toGrpcError(error);
      finish(mapped.code);
      const value = call.metadata.get(DEADLINE_METADATA_KEY)[0]?.toString().slice(0, 64);
      deps.logger.error(
        { method, requestId: requestIdOf(call), [DEADLINE_METADATA_KEY]: value },
        'malformed deadline refused',
      );
      callback(mapped.grpcError);
      return;
    }
    // The ledger's SQL spans find the call's span as the active one.
    const run = () => handler(call.request, { deadline });
    (span === undefined ? run() : tracer.withSpan(span, run)).then(
      (reply) => {
        finish('OK');
        callback(null, reply);
      },
      (error: unknown) => {
        const mapped = toGrpcError(error);
        finish(mapped.code);
        if (mapped.unexpected)
          deps.logger.error({ err: error, method, requestId: requestIdOf(call) }, 'wallet call failed');
        else deps.logger.debug({ method, requestId: requestIdOf(call), code: mapped.code }, 'wallet call declined');
        callback(mapped.grpcError);
        return;
      },
    );
  };
}

export function walletHandlers(ledger: Ledger, given: HandlerDeps): WalletHandlers {
  const deps = { ...given, service: 'wallet.v1.Wallet' };
  return {
    GetBalance: unary('GetBalance', (req, ctx) => ledger.getBalance(req, ctx), deps),
    Bet: unary('Bet', (req, ctx) => ledger.bet(req, ctx), deps),
    Win: unary('Win', (req, ctx) => ledger.win(req, ctx), deps),
    Refund: unary('Refund', (req, ctx) => ledger.refund(req, ctx), deps),
    Void: unary('Void', (req, ctx) => ledger.voidTransaction(req, ctx), deps),
    Deposit: unary('Deposit', (req, ctx) => ledger.deposit(req, ctx), deps),
    Withdraw: unary('Withdraw', (req, ctx) => ledger.withdraw(req, ctx), deps),
    OpenSession: unary('OpenSession', (req, ctx) => ledger.openSession(req, ctx), deps),
    CloseSession: unary(
      'CloseSession',
      async (req, ctx) => {
        await ledger.closeSession(req, ctx);
        return {};
      },
      deps,
    ),
    SetAccountStatus: unary('SetAccountStatus', (req, ctx) => ledger.setAccountStatus(req, ctx), deps),
    GetTransaction: unary('GetTransaction', (req) => ledger.getTransaction(req), deps),
  };
}

/** The operators' reads (wallet.v1.Admin): none moves money. */
export function adminHandlers(ledger: Ledger, given: HandlerDeps): AdminHandlers {
  const deps = { ...given, service: 'wallet.v1.Admin' };
  return {
    GetAccount: unary('GetAccount', (req) => ledger.getAccount(req), deps),
    ListEntries: unary('ListEntries', async (req) => ({ entries: await ledger.listEntries(req) }), deps),
    CheckBooks: unary(
      'CheckBooks',
      async () => {
        const books = await ledger.checkBooks();
        return {
          unbalanced_currencies: books.unbalancedCurrencies,
          drifted_accounts: books.driftedAccounts,
          negative_accounts: books.negativeAccounts,
        };
      },
      deps,
    ),
  };
}
