import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Database, Queryable } from './database.js';

/** wallet-service/sql, from src/db (tests) and dist/db (built) alike. */
const SQL_DIR = new URL('../../sql/', import.meta.url);

export interface SqlFile {
  /** The file name, e.g. `0002_attempt_id.sql`. */
  file: string;
  sql: string;
  /** sha256 of the text (line endings normalized), recorded with an applied migration. */
  checksum: string;
}

export interface Migration extends SqlFile {
  version: number;
  name: string;
}

const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

function readSqlFiles(folder: string): SqlFile[] {
  const dir = new URL(`${folder}/`, SQL_DIR);
  return readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => {
      const sql = readFileSync(new URL(file, dir), 'utf8').replace(/\r\n/g, '\n');
      return { file, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/** sql/migrations/NNNN_name.sql in order; the versions must run 1, 2, 3 … without gaps. */
export function loadMigrations(): Migration[] {
  return readSqlFiles('migrations').map((file, index) => {
    const match = MIGRATION_FILE.exec(file.file);
    if (!match || Number(match[1]) !== index + 1) {
      throw new Error(`sql/migrations/${file.file}: expected ${String(index + 1).padStart(4, '0')}_<name>.sql`);
    }
    return { ...file, version: index + 1, name: match[2] as string };
  });
}

/** sql/functions/*.sql: the ledger's functions, (re)created by every start-up. */
export function loadFunctions(): SqlFile[] {
  return readSqlFiles('functions');
}

export const MIGRATIONS: readonly Migration[] = loadMigrations();

/**
 * Applies the migrations not applied yet, each once (recorded in schema_migrations with its checksum),
 * then (re)creates the functions, all in one transaction holding an advisory lock: two wallets starting
 * together, or a restart, never apply one twice. A migration edited after it was applied is refused.
 * Returns the versions applied now.
 */
export async function migrate(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
  functions: readonly SqlFile[] = loadFunctions(),
): Promise<number[]> {
  const applied: number[] = [];
  await db.transaction(async (tx) => {
    await tx.exec('SET LOCAL statement_timeout = 0');
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`phia-wallet-migrations:${db.schema}`]);
    const recorded = await recordedMigrations(tx);
    for (const migration of migrations) {
      const checksum = recorded.get(migration.version);
      if (checksum === undefined) {
        await tx.exec(migration.sql);
        await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          migration.version,
          migration.name,
          migration.checksum,
        ]);
        applied.push(migration.version);
      } else if (checksum === null) {
        // Recorded before checksums were: the file as it is now is taken as the one applied.
        await tx.query('UPDATE schema_migrations SET checksum = $2 WHERE version = $1', [
          migration.version,
          migration.checksum,
        ]);
      } else if (checksum !== migration.checksum) {
        throw new Error(
          `migration sql/migrations/${migration.file} was edited after it was applied to schema "${db.schema}" ` +
            `(checksum ${checksum.slice(0, 12)} applied, ${migration.checksum.slice(0, 12)} in the file): ` +
            'restore the file and put the change in a new migration',
        );
      }
    }
    for (const file of functions) await tx.exec(file.sql);
  });
  return applied;
}

/** version → checksum (null: recorded by a wallet that kept no checksums). */
async function recordedMigrations(tx: Queryable): Promise<Map<number, string | null>> {
  await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text`);
  const done = await tx.query<{ version: number; checksum: string | null }>(
    'SELECT version, checksum FROM schema_migrations',
  );
  return new Map(done.rows.map((row) => [Number(row.version), row.checksum]));
}
