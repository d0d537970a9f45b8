/**
 * The gateway's one long-lived gRPC client of wallet.v1.Wallet. Every call carries a deadline and
 * the request id in `x-request-id` metadata. The deadline counts from the PHIA request's arrival
 * when the caller gives it (`arrivedAt` + WALLET_DEADLINE_MS), else from the call; it also travels
 * (less a reserve for COMMIT and the reply, see walletDecisionReserveMs) as epoch ms in
 * `x-deadline-ms` metadata, so the wallet stops before committing once it has passed even when the
 * call reached it late. A call whose deadline is (nearly) gone is not made at all.
 *
 * Admission: balance and money calls in flight are bounded (`maxInFlight`), and refused while the
 * gateway is overloaded (`isOverloaded`); a refused call rejects at once with WALLET_UNAVAILABLE,
 * which the processor stores and voids like any undecided error.
 *
 * Tracing on: a call made under a request's span is a client span, its context in the call's metadata
 * (`traceparent`), so the wallet's spans join the request's trace.
 *
 * Failures become WalletError, whose code is a contract code:
 *   trailing metadata `wallet-error-code` → that code (the wallet decided: a business decline);
 *   DEADLINE_EXCEEDED → WALLET_TIMEOUT; UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED → WALLET_UNAVAILABLE;
 *   INTERNAL from a reset HTTP/2 stream or session (RST_STREAM, "Session closed") → WALLET_UNAVAILABLE;
 *   anything else → INTERNAL.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import {
  GrpcStatus,
  isErrorCode,
  NOOP_TRACER,
  PhiaError,
  PROTO_LOADER_OPTIONS,
  recordErrorCode,
  SPAN_KIND,
  TRACE_ATTR,
  WALLET_ERROR_CODE_KEY,
  WALLET_PROTO_PATH,
  type ErrorCode,
  type PhiaTracer,
  type TraceSpan,
  type WalletTls,
} from '@phia/proto';
import type * as proto from '@phia/proto';

// The messages, generated from wallet.proto. A request needs every field but those the proto calls
// optional (proto3 itself makes every field optional); a reply has every field (defaults are on).
type Needs<T, Optional extends keyof T = never> = Required<Omit<T, Optional>> & Pick<T, Optional>;
export type GetBalanceRequest = Needs<proto.GetBalanceRequest, 'session_id'>;
export type MoneyRequest = Needs<proto.MoneyRequest, 'session_id' | 'game_id' | 'bet_tx_id' | 'attempt_id'>;
export type VoidRequest = Needs<
  proto.VoidRequest,
  'error_code' | 'fingerprint' | 'attempt_id' | 'refusal' | 'unanswered_after_ms'
>;
export type CashRequest = Needs<proto.CashRequest>;
export type OpenSessionRequest = Needs<proto.OpenSessionRequest, 'ttl_seconds'>;
export type SetAccountStatusRequest = Needs<proto.SetAccountStatusRequest>;
export type GetTransactionRequest = Needs<proto.GetTransactionRequest>;
export type BalanceReply = proto.BalanceReply__Output;
export type MoneyReply = proto.MoneyReply__Output;
export type VoidReply = proto.VoidReply__Output;
export type OpenSessionReply = proto.OpenSessionReply__Output;
export type TransactionReply = proto.TransactionReply__Output;

/** The wallet methods, by their proto name. */
export interface WalletMethods {
  GetBalance: [GetBalanceRequest, BalanceReply];
  Bet: [MoneyRequest, MoneyReply];
  Win: [MoneyRequest, MoneyReply];
  Refund: [MoneyRequest, MoneyReply];
  Void: [VoidRequest, VoidReply];
  Deposit: [CashRequest, MoneyReply];
  Withdraw: [CashRequest, MoneyReply];
  OpenSession: [OpenSessionRequest, OpenSessionReply];
  CloseSession: [Needs<proto.CloseSessionRequest>, Record<string, never>];
  SetAccountStatus: [SetAccountStatusRequest, proto.SetAccountStatusReply__Output];
  GetTransaction: [GetTransactionRequest, TransactionReply];
}
export type WalletMethod = keyof WalletMethods;

export interface CallOptions {
  requestId?: string;
  /** Overrides the client's default deadline for this call. */
  deadlineMs?: number;
  /** Epoch ms the PHIA request arrived: the deadline counts from it instead of from the call. */
  arrivedAt?: number | undefined;
}

/** Metadata key of the moment the wallet must have decided by (epoch ms, decimal integer), read by the wallet. */
export const DEADLINE_METADATA_KEY = 'x-deadline-ms';

/** A failed wallet call, as a contract code. */
export class WalletError extends PhiaError {
  /** True when the wallet itself declined (its code came in the trailing metadata). */
  readonly decidedByWallet: boolean;
  readonly grpcCode: number;

  constructor(code: ErrorCode, decidedByWallet: boolean, grpcCode: number, detail: string) {
    super(code, detail);
    this.name = 'WalletError';
    this.decidedByWallet = decidedByWallet;
    this.grpcCode = grpcCode;
  }
}

/** Maps a grpc-js call error to a WalletError (see the module comment). */
export function toWalletError(error: grpc.ServiceError | Error): WalletError {
  const serviceError = error as Partial<grpc.ServiceError>;
  const grpcCode = typeof serviceError.code === 'number' ? serviceError.code : GrpcStatus.UNKNOWN;
  const detail = `grpc ${grpcCode}: ${serviceError.details ?? error.message}`;
  const walletCode = serviceError.metadata?.get(WALLET_ERROR_CODE_KEY)[0];
  const text = typeof walletCode === 'string' ? walletCode : walletCode?.toString('utf8');
  if (isErrorCode(text)) return new WalletError(text, true, grpcCode, detail);
  if (grpcCode === GrpcStatus.INTERNAL && isConnectionReset(serviceError.details ?? error.message)) {
    // The HTTP/2 stream or session was reset (e.g. the server's rapid-reset protection closed the
    // session): the wallet is unreachable for this call, and whether it ran is undecided.
    return new WalletError('WALLET_UNAVAILABLE', false, grpcCode, detail);
  }
  switch (grpcCode) {
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new WalletError('WALLET_TIMEOUT', false, grpcCode, detail);
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.RESOURCE_EXHAUSTED:
    case GrpcStatus.CANCELLED:
      return new WalletError('WALLET_UNAVAILABLE', false, grpcCode, detail);
    default:
      return new WalletError('INTERNAL', false, grpcCode, detail);
  }
}

/** grpc-js's texts for a reset stream or a closed HTTP/2 session. */
function isConnectionReset(details: string): boolean {
  return /Received RST_STREAM|Session closed|Stream refused/i.test(details);
}

/** Below this much time left, a call is not made at all: answered WALLET_TIMEOUT at once. */
export const MIN_CALL_TIME_MS = 10;

/**
 * The wallet must decide this long before the gateway's own deadline: `x-deadline-ms` is set that much
 * earlier than the gRPC deadline. The wallet checks it right before COMMIT, and a COMMIT (plus the
 * reply's way back) that ends after the gateway answered 504 is money moved for an error answer; the
 * void that undoes it can fail once the player has spent a late win (the soak saw it). A quarter of
 * the budget, at most 250 ms.
 */
export function walletDecisionReserveMs(budgetMs: number): number {
  return Math.min(250, Math.floor(budgetMs / 4));
}

export interface WalletClientOptions {
  /** host:port */
  address: string;
  deadlineMs: number;
  /** Balance and money calls in flight at most (WALLET_MAX_IN_FLIGHT); unset: unbounded. */
  maxInFlight?: number;
  /** While true, balance and money calls are refused at once (event loop overloaded). */
  isOverloaded?: () => boolean;
  /** Mutual TLS to the wallet (this gateway's certificate, the CA of the wallet's); unset: plaintext. */
  tls?: WalletTls | undefined;
  /** Observes every call: method, outcome ('ok' or the error code) and duration in seconds. */
  onCall?: (method: WalletMethod, outcome: string, seconds: number) => void;
  /** Traces the calls made under an active span (default: tracing off). */
  tracer?: PhiaTracer;
}

type UnaryFn = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: unknown) => void,
) => grpc.ClientUnaryCall;

let cachedConstructor: grpc.ServiceClientConstructor | undefined;

/** grpc.health.v1's Check, as the loaded client has it. */
type HealthClient = grpc.Client & {
  Check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, reply?: { status?: string }) => void,
  ): grpc.ClientUnaryCall;
};
let cachedHealthConstructor: grpc.ServiceClientConstructor | undefined;

/** The health proto file of grpc-health-check, parsed with the wallet's (importing the package parses it again). */
const HEALTH_PROTO_PATH = createRequire(import.meta.url).resolve('grpc-health-check/proto/health/v1/health.proto');

/** The wallet's service name in grpc.health.v1. */
export const WALLET_HEALTH_SERVICE = 'wallet.v1.Wallet';
const WALLET_SERVICE = WALLET_HEALTH_SERVICE;

function endSpan(span: TraceSpan, grpcCode: number, code: ErrorCode | undefined): void {
  span.setAttribute(TRACE_ATTR.grpcStatus, grpcCode);
  if (code !== undefined) recordErrorCode(span, code);
  span.end();
}

function walletConstructor(): grpc.ServiceClientConstructor {
  if (cachedConstructor === undefined) {
    const definition = protoLoader.loadSync([WALLET_PROTO_PATH, HEALTH_PROTO_PATH], { ...PROTO_LOADER_OPTIONS });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      wallet: { v1: { Wallet: grpc.ServiceClientConstructor } };
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    cachedConstructor = loaded.wallet.v1.Wallet;
    cachedHealthConstructor = loaded.grpc.health.v1.Health;
  }
  return cachedConstructor;
}

export class WalletClient {
  readonly address: string;
  readonly deadlineMs: number;
  readonly #client: grpc.Client;
  readonly #health: HealthClient;
  readonly #onCall: WalletClientOptions['onCall'];
  readonly #maxInFlight: number;
  readonly #isOverloaded: () => boolean;
  readonly #tracer: PhiaTracer;
  #inFlight = 0;
  #closed = false;

  constructor(options: WalletClientOptions) {
    const Wallet = walletConstructor();
    this.address = options.address;
    this.deadlineMs = options.deadlineMs;
    this.#onCall = options.onCall;
    this.#maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
    this.#isOverloaded = options.isOverloaded ?? (() => false);
    this.#tracer = options.tracer ?? NOOP_TRACER;
    const credentials =
      options.tls === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(options.tls.ca, options.tls.key, options.tls.cert);
    this.#client = new Wallet(options.address, credentials, {
      // Reconnect quickly after the wallet comes back; keep the connection alive between bursts.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.enable_retries': 0,
      // Channelz keeps per-call statistics nobody reads here: CPU on every call.
      'grpc.enable_channelz': 0,
      // Every address the name resolves to (e.g. a scaled compose service) shares the calls.
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
    // Health checks share the wallet calls' channel (and its TLS).
    const Health = cachedHealthConstructor as grpc.ServiceClientConstructor;
    this.#health = new Health(options.address, credentials, {
      channelOverride: this.#client.getChannel(),
    }) as unknown as HealthClient;
  }

  /** Balance and money calls in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** One unary call with the deadline; resolves with the reply or rejects with a WalletError. */
  call<M extends WalletMethod>(
    method: M,
    request: WalletMethods[M][0],
    options: CallOptions = {},
  ): Promise<WalletMethods[M][1]> {
    return this.#call(method, request, options, false);
  }

  #call<M extends WalletMethod>(
    method: M,
    request: WalletMethods[M][0],
    options: CallOptions,
    bounded: boolean,
  ): Promise<WalletMethods[M][1]> {
    const fn = (this.#client as unknown as Record<string, UnaryFn>)[method];
    if (typeof fn !== 'function') return Promise.reject(new WalletError('INTERNAL', false, 12, `no method ${method}`));
    if (this.#closed) {
      return Promise.reject(new WalletError('WALLET_UNAVAILABLE', false, GrpcStatus.UNAVAILABLE, 'client closed'));
    }
    const now = Date.now();
    const budgetMs = options.deadlineMs ?? this.deadlineMs;
    // Whole milliseconds whatever the caller gives: the wallet refuses an x-deadline-ms with a fraction.
    const deadlineAt = Math.floor((options.arrivedAt ?? now) + budgetMs);
    if (!Number.isFinite(deadlineAt)) {
      this.#onCall?.(method, 'INTERNAL', 0);
      return Promise.reject(new WalletError('INTERNAL', false, GrpcStatus.UNKNOWN, 'call deadline is not a number'));
    }
    if (deadlineAt - now < MIN_CALL_TIME_MS) {
      this.#onCall?.(method, 'WALLET_TIMEOUT', 0);
      return Promise.reject(
        new WalletError('WALLET_TIMEOUT', false, GrpcStatus.DEADLINE_EXCEEDED, 'deadline gone before the call'),
      );
    }
    if (bounded) {
      let refusal: string | undefined;
      if (this.#inFlight >= this.#maxInFlight) refusal = `${this.#inFlight} wallet calls in flight already`;
      else if (this.#isOverloaded()) refusal = 'gateway overloaded';
      if (refusal !== undefined) {
        this.#onCall?.(method, 'WALLET_UNAVAILABLE', 0);
        return Promise.reject(new WalletError('WALLET_UNAVAILABLE', false, GrpcStatus.RESOURCE_EXHAUSTED, refusal));
      }
    }
    const metadata = new grpc.Metadata();
    if (options.requestId !== undefined) metadata.set('x-request-id', options.requestId);
    metadata.set(DEADLINE_METADATA_KEY, String(deadlineAt - walletDecisionReserveMs(budgetMs)));
    const span = this.#tracer.enabled ? this.#startSpan(method, metadata) : undefined;
    const deadline = new Date(deadlineAt);
    const started = process.hrtime.bigint();
    if (bounded) this.#inFlight++;
    return new Promise((resolve, reject) => {
      const callback = (error: grpc.ServiceError | null, reply: unknown) => {
        if (bounded) this.#inFlight--;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (error) {
          const walletError = toWalletError(error);
          this.#onCall?.(method, walletError.code, seconds);
          if (span !== undefined) endSpan(span, error.code, walletError.code);
          reject(walletError);
        } else {
          this.#onCall?.(method, 'ok', seconds);
          if (span !== undefined) endSpan(span, GrpcStatus.OK, undefined);
          resolve(reply as WalletMethods[M][1]);
        }
      };
      try {
        fn.call(this.#client, request, metadata, { deadline }, callback);
      } catch (error) {
        if (bounded) this.#inFlight--;
        if (span !== undefined) endSpan(span, GrpcStatus.UNAVAILABLE, 'WALLET_UNAVAILABLE');
        // grpc-js throws synchronously on a shut-down channel: the wallet cannot be reached.
        reject(new WalletError('WALLET_UNAVAILABLE', false, GrpcStatus.UNAVAILABLE, (error as Error).message));
      }
    });
  }

  /** The client span of a call under the active span, its context injected; undefined without one. */
  #startSpan(method: WalletMethod, metadata: grpc.Metadata): TraceSpan | undefined {
    if (this.#tracer.active() === undefined) return undefined;
    const span = this.#tracer.startSpan(`${WALLET_SERVICE}/${method}`, SPAN_KIND.CLIENT, {
      [TRACE_ATTR.rpcSystem]: 'grpc',
      [TRACE_ATTR.rpcService]: WALLET_SERVICE,
      [TRACE_ATTR.rpcMethod]: method,
    });
    this.#tracer.inject(span, metadata);
    return span;
  }

  /** A PHIA balance: bounded by the admission checks. */
  getBalance(request: GetBalanceRequest, options: CallOptions = {}): Promise<BalanceReply> {
    return this.#call('GetBalance', request, options, true);
  }

  /** A PHIA money call: bounded by the admission checks. */
  money(method: 'Bet' | 'Win' | 'Refund', request: MoneyRequest, options: CallOptions = {}): Promise<MoneyReply> {
    return this.#call(method, request, options, true);
  }

  void(request: VoidRequest, options?: CallOptions): Promise<VoidReply> {
    return this.call('Void', request, options);
  }

  /** Whether a connection to the wallet can be made within `timeoutMs`. */
  ping(timeoutMs = 500): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#client.waitForReady(new Date(Date.now() + timeoutMs), (error) => resolve(!error));
    });
  }

  /**
   * The wallet's own word on whether it serves (grpc.health.v1 `Check`; readiness): `SERVING`,
   * `NOT_SERVING` (starting, its database not ready yet, or shutting down), or `down` when it cannot
   * be asked within `timeoutMs`. A connected channel alone says nothing: during its database's
   * start-up the wallet answers every call UNAVAILABLE.
   */
  health(timeoutMs = 500): Promise<string> {
    if (this.#closed) return Promise.resolve('down');
    return new Promise((resolve) => {
      this.#health.Check(
        { service: WALLET_HEALTH_SERVICE },
        { deadline: new Date(Date.now() + timeoutMs) },
        (error, reply) => resolve(error ? 'down' : (reply?.status ?? 'UNKNOWN')),
      );
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.close();
  }
}
