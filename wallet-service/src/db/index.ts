import type { Database } from './database.js';
import { migrate } from './migrations.js';
import { openPglite } from './pglite.js';
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
      : await openPglite({ dataDir: options.dataDir, schema });
  try {
    await migrate(db);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}
