import pg from 'pg';
import {
  assertSchemaName,
  beginStatement,
  type Database,
  type Queryable,
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

  async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const result = await this.pool.query(sql, params as unknown[] | undefined);
    return { rows: result.rows as R[] };
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
    // The listener goes on inside the pool's callback, synchronously: after `await pool.connect()` it
    // would come a microtask late, and a FATAL that arrived with the connection's ReadyForQuery is
    // emitted in between.
    const client = await new Promise<pg.PoolClient>((resolve, reject) => {
      this.pool.connect((error, acquired) => {
        if (error || acquired === undefined) {
          reject(error ?? new Error('no client from the pool'));
          return;
        }
        acquired.on('error', onError);
        resolve(acquired);
      });
    });
    try {
      await client.query(beginStatement(options));
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
}

export async function openPostgres(options: PostgresOptions): Promise<Database> {
  const schema = assertSchemaName(options.schema);
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize ?? 16,
    application_name: options.applicationName ?? 'phia-wallet',
    options: `-c search_path=${schema}`,
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
  });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  return new PostgresDatabase(pool, schema);
}
