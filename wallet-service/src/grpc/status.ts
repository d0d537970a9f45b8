import * as grpc from '@grpc/grpc-js';
import { ERRORS, PhiaError, WALLET_ERROR_CODE_KEY, type ErrorCode } from '@phia/proto';
import { DatabaseUnavailableError, DeadlineExceededError } from '../ledger/errors.js';

export interface MappedError {
  code: ErrorCode;
  grpcError: Partial<grpc.StatusObject>;
  /** Unexpected faults are logged with their stack; business declines are not. */
  unexpected: boolean;
}

/** Turns any error into a gRPC status whose trailing metadata carries the contract's code. */
export function toGrpcError(error: unknown): MappedError {
  let code: ErrorCode;
  let details: string;
  if (error instanceof PhiaError) {
    code = error.code;
    details = error.detail ? `${error.message}: ${error.detail}` : error.message;
  } else if (error instanceof DeadlineExceededError) {
    code = 'WALLET_TIMEOUT';
    details = error.message;
  } else if (error instanceof DatabaseUnavailableError) {
    code = 'WALLET_UNAVAILABLE';
    details = error.message;
  } else {
    code = 'INTERNAL';
    details = ERRORS.INTERNAL.message;
  }
  const metadata = new grpc.Metadata();
  metadata.set(WALLET_ERROR_CODE_KEY, code);
  return {
    code,
    grpcError: { code: ERRORS[code].grpcStatus, details, metadata },
    unexpected: code === 'INTERNAL',
  };
}
