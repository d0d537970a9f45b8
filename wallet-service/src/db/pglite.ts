import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import {
  assertSchemaName,
  type Database,
  type Queryable,
  type QueryResult,
  type TransactionOptions,
} from './database.js';

export interface PgliteOptions {
  /** Folder for the data files; undefined keeps everything in memory (tests). */
  dataDir?: string;
  schema: string;
}

class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;

  constructor(
    private readonly db: PGlite,
    readonly schema: string,
  ) {}

  async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const result = await this.db.query<R>(sql, params as unknown[] | undefined);
    return { rows: result.rows };
  }

  async exec(sql: string): Promise<void> {
    await this.db.exec(sql);
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.db.transaction(async (transaction: Transaction) => {
      const timeoutMs = typeof options?.timeoutMs === 'function' ? options.timeoutMs() : options?.timeoutMs;
      if (timeoutMs !== undefined) {
        const value = Math.max(1, Math.floor(timeoutMs));
        await transaction.exec(`SET LOCAL statement_timeout = ${value}; SET LOCAL lock_timeout = ${value}`);
      }
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          const result = await transaction.query<R>(sql, params as unknown[] | undefined);
          return { rows: result.rows };
        },
        exec: async (sql: string) => {
          await transaction.exec(sql);
        },
      };
      return fn(tx);
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export async function openPglite(options: PgliteOptions): Promise<Database> {
  const schema = assertSchemaName(options.schema);
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  const db = options.dataDir === undefined ? new PGlite() : new PGlite(options.dataDir);
  await db.waitReady;
  await db.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path TO ${schema};`);
  return new PgliteDatabase(db, schema);
}
