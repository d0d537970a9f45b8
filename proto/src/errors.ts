/**
 * The one table of machine error codes (contract section 5): HTTP status for the gateway, gRPC
 * status for the wallet, and the message text PHIA's client acts on. Both services read it, so a
 * code can never mean two things.
 */

/** gRPC status numbers (kept here so this package needs no grpc dependency). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/**
 * What an error answer to a money request is (docs/idempotency.md):
 *   decided: the ledger stored it; final, stored and replayed to every copy;
 *   undecided: the ledger did not decide (timeout, unavailable, fault): settled with the ledger, or voided;
 *   request: the answer of one request only (a reused key, a copy still running, a refused call):
 *     never stored, never voided.
 */
export type AnswerClass = 'decided' | 'undecided' | 'request';

export interface ErrorDefinition {
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** Contains the words PHIA's client looks for (e.g. "session not found"). */
  readonly message: string;
  readonly answer: AnswerClass;
}

export const ERRORS = {
  INVALID_REQUEST: {
    httpStatus: 400,
    grpcStatus: GrpcStatus.INVALID_ARGUMENT,
    message: 'invalid request',
    answer: 'decided',
  },
  INVALID_SIGNATURE: {
    httpStatus: 401,
    grpcStatus: GrpcStatus.UNAUTHENTICATED,
    message: 'unauthorized',
    answer: 'request',
  },
  SESSION_NOT_FOUND: {
    httpStatus: 401,
    grpcStatus: GrpcStatus.UNAUTHENTICATED,
    message: 'session not found',
    answer: 'decided',
  },
  WRONG_SESSION: {
    httpStatus: 401,
    grpcStatus: GrpcStatus.PERMISSION_DENIED,
    message: 'wrong session ID',
    answer: 'decided',
  },
  INSUFFICIENT_FUNDS: {
    httpStatus: 402,
    grpcStatus: GrpcStatus.FAILED_PRECONDITION,
    message: 'insufficient funds',
    answer: 'decided',
  },
  IP_NOT_ALLOWED: {
    httpStatus: 403,
    grpcStatus: GrpcStatus.PERMISSION_DENIED,
    message: 'ip not allowed',
    answer: 'request',
  },
  PLAYER_BLOCKED: {
    httpStatus: 403,
    grpcStatus: GrpcStatus.PERMISSION_DENIED,
    message: 'player blocked',
    answer: 'decided',
  },
  ACCOUNT_NOT_FOUND: {
    httpStatus: 404,
    grpcStatus: GrpcStatus.NOT_FOUND,
    message: 'account not found',
    answer: 'decided',
  },
  IDEMPOTENCY_MISMATCH: {
    httpStatus: 409,
    grpcStatus: GrpcStatus.ALREADY_EXISTS,
    message: 'tx_id reused with different content',
    answer: 'request',
  },
  REQUEST_IN_PROGRESS: {
    httpStatus: 409,
    grpcStatus: GrpcStatus.ABORTED,
    message: 'request in progress',
    answer: 'request',
  },
  BET_REFUNDED: {
    httpStatus: 409,
    grpcStatus: GrpcStatus.FAILED_PRECONDITION,
    message: 'bet already refunded',
    answer: 'decided',
  },
  BET_NOT_APPLIED: {
    httpStatus: 409,
    grpcStatus: GrpcStatus.FAILED_PRECONDITION,
    message: 'bet not applied',
    answer: 'decided',
  },
  REFUND_EXCEEDS_BET: {
    httpStatus: 409,
    grpcStatus: GrpcStatus.FAILED_PRECONDITION,
    message: 'refund exceeds what is left of the bet',
    answer: 'decided',
  },
  PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED,
    message: 'payload too large',
    answer: 'request',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    httpStatus: 415,
    grpcStatus: GrpcStatus.INVALID_ARGUMENT,
    message: 'unsupported content type',
    answer: 'request',
  },
  WALLET_UNAVAILABLE: {
    httpStatus: 503,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    message: 'wallet unavailable',
    answer: 'undecided',
  },
  WALLET_TIMEOUT: {
    httpStatus: 504,
    grpcStatus: GrpcStatus.DEADLINE_EXCEEDED,
    message: 'wallet timeout',
    answer: 'undecided',
  },
  /** Not a PHIA answer: an unexpected fault. The gateway answers it as 500 with no detail. */
  INTERNAL: { httpStatus: 500, grpcStatus: GrpcStatus.INTERNAL, message: 'internal error', answer: 'undecided' },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/** The class of a code's answer to a money request (see AnswerClass): the one classification. */
export function answerClass(code: ErrorCode): AnswerClass {
  return ERRORS[code].answer;
}

/** Trailing-metadata key under which the wallet puts the machine code of a declined call. */
export const WALLET_ERROR_CODE_KEY = 'wallet-error-code';

/** A typed error with a machine code; its statuses come from the one table above. */
export class PhiaError extends Error {
  readonly code: ErrorCode;
  /** Extra detail for logs only; never sent to PHIA. */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, detail?: string) {
    super(ERRORS[code].message);
    this.name = 'PhiaError';
    this.code = code;
    this.detail = detail;
  }

  get httpStatus(): number {
    return ERRORS[this.code].httpStatus;
  }

  get grpcStatus(): number {
    return ERRORS[this.code].grpcStatus;
  }
}
