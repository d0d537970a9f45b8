/** Real PostgreSQL for tests: every test file gets a schema of its own, dropped at the end. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  databaseUrl: string;
  schema: string;
  /** A pool on the same schema, for assertions and for fault injection (row locks, killed backends). */
  pool: pg.Pool;
  drop(): Promise<void>;
}

export async function createTestSchema(label = 't'): Promise<TestSchema> {
  const schema = `t_${label.replace(/[^a-z0-9_]/g, '_').slice(0, 20)}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}`, max: 4 });
  pool.on('error', () => {});
  return {
    databaseUrl: TEST_DATABASE_URL,
    schema,
    pool,
    async drop() {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.end();
    },
  };
}
