import type { Database } from './database.js';
import { migrate } from './migrations.js';
import { openPostgres } from './postgres.js';

export * from './database.js';
export { migrate, MIGRATIONS } from './migrations.js';

export interface OpenDatabaseOptions {
  /** PostgreSQL URL; unset: PGlite in dataDir. */
  databaseUrl?: string | undefined;
  dataDir?: string | undefined;
  schema?: string | undefined;
  poolSize?: number | undefined;
  /** PostgreSQL only: application_name of the connections (default `phia-wallet`). */
  applicationName?: string | undefined;
}

/** Opens PostgreSQL or the embedded PGlite and brings the schema up to date. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const schema = options.schema ?? 'wallet';
  const db =
    options.databaseUrl !== undefined && options.databaseUrl !== ''
      ? await openPostgres({
          connectionString: options.databaseUrl,
          schema,
          poolSize: options.poolSize,
          applicationName: options.applicationName,
        })
      : await (await loadPglite()).openPglite({ dataDir: options.dataDir, schema });
  try {
    await migrate(db);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}

/**
 * PGlite (27 MB, development only) is loaded when used, never on the PostgreSQL path: it is a
 * development dependency, left out of the production image.
 */
async function loadPglite(): Promise<typeof import('./pglite.js')> {
  try {
    return await import('./pglite.js');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new Error(
      'DATABASE_URL is unset and PGlite, the development ledger, is not installed (npm ci --omit=dev leaves it out): set DATABASE_URL',
      { cause: error },
    );
  }
}
