import { buildCurrencyTable, PhiaError } from '@phia/proto';
import { createTestSchema, type TestSchema } from '../../../test/helpers/postgres.js';
import { openDatabase, type Database } from '../db/index.js';
import { Ledger, type LedgerHooks } from '../ledger/ledger.js';

export interface TestLedger {
  ledger: Ledger;
  db: Database;
  schema: TestSchema;
  close(): Promise<void>;
}

/** A Ledger on real PostgreSQL in a fresh schema. */
export async function openTestLedger(label: string, hooks?: LedgerHooks): Promise<TestLedger> {
  const schema = await createTestSchema(label);
  const db = await openDatabase({ databaseUrl: schema.databaseUrl, schema: schema.schema, poolSize: 60 });
  const ledger = new Ledger(db, { currencies: buildCurrencyTable(), hooks });
  return {
    ledger,
    db,
    schema,
    async close() {
      await db.close();
      await schema.drop();
    },
  };
}

/** The contract code a promise rejected with, or 'OK' when it resolved. */
export async function outcomeCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    if (error instanceof PhiaError) return error.code;
    return (error as Error).name;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
