/**
 * The wallet's gRPC messages as TypeScript types, generated from wallet/v1/wallet.proto by the build
 * (`npm run generate --workspace proto`, proto-loader-gen-types with PROTO_LOADER_OPTIONS' settings).
 * `X` is what a sender may give (every field optional, as in proto3), `X__Output` what a receiver
 * gets (every field present: defaults are on).
 */
export type * from './generated/wallet/v1/AccountBalance.js';
export type * from './generated/wallet/v1/AccountDrift.js';
export type * from './generated/wallet/v1/AccountReply.js';
export type * from './generated/wallet/v1/Admin.js';
export type * from './generated/wallet/v1/BalanceReply.js';
export type * from './generated/wallet/v1/BooksReply.js';
export type * from './generated/wallet/v1/CashRequest.js';
export type * from './generated/wallet/v1/CheckBooksRequest.js';
export type * from './generated/wallet/v1/CloseSessionReply.js';
export type * from './generated/wallet/v1/CloseSessionRequest.js';
export type * from './generated/wallet/v1/CurrencySum.js';
export type * from './generated/wallet/v1/EntriesReply.js';
export type * from './generated/wallet/v1/Entry.js';
export type * from './generated/wallet/v1/GetAccountRequest.js';
export type * from './generated/wallet/v1/GetBalanceRequest.js';
export type * from './generated/wallet/v1/GetTransactionRequest.js';
export type * from './generated/wallet/v1/MoneyReply.js';
export type * from './generated/wallet/v1/MoneyRequest.js';
export type * from './generated/wallet/v1/OpenSessionReply.js';
export type * from './generated/wallet/v1/OpenSessionRequest.js';
export type * from './generated/wallet/v1/SetAccountStatusReply.js';
export type * from './generated/wallet/v1/SetAccountStatusRequest.js';
export type * from './generated/wallet/v1/TransactionReply.js';
export type * from './generated/wallet/v1/VoidReply.js';
export type * from './generated/wallet/v1/VoidRequest.js';
export type * from './generated/wallet/v1/Wallet.js';
export type { ProtoGrpcType as WalletProtoGrpcType } from './generated/wallet.js';
