export { startWalletServer, loadWalletPackageDefinition, WALLET_SERVICE_NAME } from './wallet.js';
export type { WalletServer, WalletServerOptions } from './wallet.js';
export { Ledger } from './ledger/ledger.js';
export type {
  BooksReport,
  CallContext,
  MoneyAnswer,
  MoneyInput,
  TransactionRecord,
  VoidAnswer,
} from './ledger/ledger.js';
export { loadWalletConfig, ConfigError } from './config.js';
export type { WalletConfig } from './config.js';
export { openDatabase } from './db/index.js';
export type { Database, Queryable } from './db/index.js';
