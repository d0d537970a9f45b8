/**
 * One small database interface over PostgreSQL (pg) and the embedded PGlite, so the ledger's SQL is
 * written once. Results come back as plain rows; numerics are selected as text by the callers.
 */
export interface QueryResult<R> {
  rows: R[];
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs several ;-separated statements with no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface TransactionOptions {
  timeoutMs?: number;
}

/** The statements that open a transaction with the given timeouts. */
export function beginStatement(options: TransactionOptions | undefined): string {
  const ms = options?.timeoutMs;
  if (ms === undefined) return 'BEGIN';
  const value = Math.max(1, Math.floor(ms)); // an integer: safe to inline
  return `BEGIN; SET LOCAL statement_timeout = ${value}; SET LOCAL lock_timeout = ${value}`;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** The schema every statement runs in (search_path). */
  readonly schema: string;
  /**
   * Runs fn inside BEGIN … COMMIT on one connection; any throw rolls back. `timeoutMs` becomes the
   * transaction's statement_timeout and lock_timeout (sent with BEGIN, no extra round trip).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(`database schema "${schema}" must match ${SCHEMA_NAME.source}`);
  }
  return schema;
}

/** SQLSTATEs that mean "the database is not reachable / the connection died": answer UNAVAILABLE. */
const CONNECTION_FAILURE_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004']);
const CONNECTION_FAILURE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND']);

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isConnectionFailure(error: unknown): boolean {
  const code = sqlState(error);
  if (code !== undefined && (CONNECTION_FAILURE_CODES.has(code) || CONNECTION_FAILURE_ERRNO.has(code))) return true;
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(
    message,
  );
}
