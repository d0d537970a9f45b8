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
  /**
   * statement_timeout and lock_timeout of the transaction. A function is called once a connection is
   * held, right before BEGIN, so the time spent waiting for the connection counts; it may throw to
   * give up before anything ran (the connection goes back to the pool).
   */
  timeoutMs?: number | (() => number);
  /** Longest wait for a pool connection (PostgreSQL; default: the pool's own limit). */
  connectWaitMs?: number;
}

export interface QueryOptions {
  /** Longest wait for a pool connection (PostgreSQL; default: the pool's own limit). */
  connectWaitMs?: number;
  /**
   * PostgreSQL: run as this named prepared statement (parsed once per connection, then only bound and
   * executed). One name, one text.
   */
  name?: string;
}

/** No pool connection came within the wait: nothing ran. */
export class PoolTimeoutError extends Error {
  constructor(waitedMs: number) {
    super(`no database connection within ${Math.round(waitedMs)} ms`);
    this.name = 'PoolTimeoutError';
  }
}

/** A wait for a pool connection that ran out (ours, or pg.Pool's connectionTimeoutMillis). */
export function isPoolTimeout(error: unknown): boolean {
  if (error instanceof PoolTimeoutError) return true;
  return error instanceof Error && /timeout exceeded when trying to connect/i.test(error.message);
}

/** The statements that open a transaction with the given timeouts. */
export function beginStatement(options: { timeoutMs?: number } | undefined): string {
  const ms = options?.timeoutMs;
  if (ms === undefined) return 'BEGIN';
  const value = Math.max(1, Math.floor(ms)); // an integer: safe to inline
  return `BEGIN; SET LOCAL statement_timeout = ${value}; SET LOCAL lock_timeout = ${value}`;
}

/** A connection pool's state: connections open, idle ones, and requests waiting for one. */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** One statement on its own (autocommit), with a bounded wait for a connection. */
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<R>>;
  /** The schema every statement runs in (search_path). */
  readonly schema: string;
  /**
   * Runs fn inside BEGIN … COMMIT on one connection; any throw rolls back. `timeoutMs` becomes the
   * transaction's statement_timeout and lock_timeout (sent with BEGIN, no extra round trip);
   * `connectWaitMs` bounds the wait for a connection (PoolTimeoutError).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
  /** PostgreSQL: the pool's state now (PGlite has no pool). */
  poolStats?(): PoolStats;
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
