import pg from 'pg';
import {
  assertSchemaName,
  beginStatement,
  PoolTimeoutError,
  type Database,
  type PoolStats,
  type Queryable,
  type QueryOptions,
  type QueryResult,
  type TransactionOptions,
} from './database.js';

export interface PostgresOptions {
  connectionString: string;
  schema: string;
  poolSize?: number;
  /** Reported to PostgreSQL, handy in pg_stat_activity (and for killing our own connections in tests). */
  applicationName?: string;
}

class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;

  constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
  ) {}

  async query<R>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    const statement = { text: sql, values: params as unknown[] | undefined, name: options?.name };
    if (options?.connectWaitMs === undefined) {
      const result = await this.pool.query(statement);
      return { rows: result.rows as R[] };
    }
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken = error;
    };
    const client = await this.acquire(options.connectWaitMs, onError);
    try {
      const result = await client.query(statement);
      return { rows: result.rows as R[] };
    } catch (error) {
      if (broken === undefined && isBrokenConnection(error)) broken = error as Error;
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /**
   * A pool connection, waiting at most `waitMs` (else PoolTimeoutError; a connection that comes later
   * goes straight back to the pool). `onError` is attached inside the pool's callback, synchronously:
   * after `await pool.connect()` it would come a microtask late, and a FATAL that arrived with the
   * connection's ReadyForQuery is emitted in between. The caller removes it before releasing.
   */
  private acquire(waitMs: number | undefined, onError: (error: Error) => void): Promise<pg.PoolClient> {
    return new Promise<pg.PoolClient>((resolve, reject) => {
      let settled = false;
      const timer =
        waitMs === undefined
          ? undefined
          : setTimeout(
              () => {
                settled = true;
                reject(new PoolTimeoutError(waitMs));
              },
              Math.max(0, waitMs),
            );
      this.pool.connect((error, acquired, done) => {
        if (settled) {
          // Gave up waiting: hand the connection back at once.
          if (acquired !== undefined) done(error ?? undefined);
          return;
        }
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        if (error || acquired === undefined) {
          reject(error ?? new Error('no client from the pool'));
          return;
        }
        acquired.on('error', onError);
        resolve(acquired);
      });
    });
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    let broken: Error | undefined;
    // While checked out the pool no longer listens for the client's 'error': a backend terminated
    // between two statements (pg_terminate_backend, a failover) would be an unhandled 'error' event
    // and kill the process. Keep the error instead; the next statement fails and the client is dropped.
    const onError = (error: Error) => {
      broken = error;
    };
    const client = await this.acquire(options?.connectWaitMs, onError);
    let timeoutMs: number | undefined;
    try {
      timeoutMs = typeof options?.timeoutMs === 'function' ? options.timeoutMs() : options?.timeoutMs;
    } catch (error) {
      // Gave up before BEGIN (e.g. the deadline went by while waiting for the connection).
      client.removeListener('error', onError);
      client.release(broken);
      throw error;
    }
    try {
      await client.query(beginStatement(timeoutMs === undefined ? undefined : { timeoutMs }));
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          const result = await client.query(sql, params as unknown[] | undefined);
          return { rows: result.rows as R[] };
        },
        exec: async (sql: string) => {
          await client.query(sql);
        },
      };
      const value = await fn(tx);
      await client.query('COMMIT');
      return value;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        // The connection is gone: give it back destroyed, never to the pool.
        broken = rollbackError as Error;
      }
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  poolStats(): PoolStats {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }
}

/** A statement error that leaves the connection unusable: destroy it rather than pool it. */
function isBrokenConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code !== 'string' || code.startsWith('08') || code.startsWith('57P');
}

/**
 * Settings of every wallet connection. A ledger call is one statement that commits by itself, so a
 * wallet that dies after sending it would otherwise still commit it (when a lock it waits for is
 * released, say), answered to no one: PostgreSQL checks every 10 ms that the client is still there
 * (client_connection_check_interval, PostgreSQL 14 and later) and rolls the statement back if not.
 */
export function connectionOptions(schema: string): string {
  return `-c search_path=${assertSchemaName(schema)} -c client_connection_check_interval=10`;
}

export async function openPostgres(options: PostgresOptions): Promise<Database> {
  const schema = assertSchemaName(options.schema);
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize ?? 16,
    application_name: options.applicationName ?? 'phia-wallet',
    options: connectionOptions(schema),
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
  });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  return new PostgresDatabase(pool, schema);
}
