import { fileURLToPath } from 'node:url';

export * from './errors.js';
export * from './money.js';
export * from './fingerprint.js';
export * from './wallet-link.js';
export * from './void-outbox.js';
export * from './tracing.js';
export type * from './wallet-messages.js';

/** Absolute path of the folder holding the .proto files (the include root). */
export const PROTO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Absolute path of wallet.proto, for @grpc/proto-loader. */
export const WALLET_PROTO_PATH = fileURLToPath(new URL('../wallet/v1/wallet.proto', import.meta.url));

/** proto-loader options both sides use: snake_case field names as written, strings for 64-bit ints. */
export const PROTO_LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The money request kinds, as stored and as named in Void and GetTransaction. */
export const MONEY_KINDS = ['bet', 'win', 'refund'] as const;
export const LEDGER_KINDS = ['bet', 'win', 'refund', 'deposit', 'withdraw'] as const;
export type MoneyKind = (typeof MONEY_KINDS)[number];
export type LedgerKind = (typeof LEDGER_KINDS)[number];
