/**
 * SQL spans: the database with a client span around each statement and transaction run under a gRPC
 * call's span. A span names the statement (the ledger's prepared-statement name, else its SQL verb),
 * never its text or parameters (amounts, user ids). Tracing off: the database itself.
 */
import { failSpan, SPAN_KIND, TRACE_ATTR, type PhiaTracer } from '@phia/proto';
import { sqlState, type Database, type QueryOptions, type Queryable, type QueryResult } from './database.js';

/** The SQL verb of a statement (SELECT, INSERT, WITH, ...): what a span may say of an unnamed one. */
export function sqlOperation(sql: string): string {
  return /^\s*([A-Za-z]+)/.exec(sql)?.[1]?.toUpperCase() ?? 'SQL';
}

export function traceDatabase(db: Database, tracer: PhiaTracer): Database {
  if (!tracer.enabled) return db;
  const system = db.kind === 'postgres' ? 'postgresql' : 'pglite';
  /** `children`: the span is active while `run` runs (a transaction's statements are its children). */
  const traced = async <T>(summary: string, operation: string, children: boolean, run: () => Promise<T>) => {
    // Outside a call (the books check, start-up): no span, as the gateway's background work.
    if (tracer.active() === undefined) return run();
    const span = tracer.startSpan(summary, SPAN_KIND.CLIENT, {
      [TRACE_ATTR.dbSystem]: system,
      [TRACE_ATTR.dbOperation]: operation,
      [TRACE_ATTR.dbSummary]: summary,
    });
    try {
      return await (children ? tracer.withSpan(span, run) : run());
    } catch (error) {
      // The SQLSTATE (e.g. 40001, 57014), not the message: messages can quote values.
      failSpan(span, sqlState(error) ?? 'error');
      throw error;
    } finally {
      span.end();
    }
  };
  const statement = <R>(sql: string, name: string | undefined, run: () => Promise<QueryResult<R>>) => {
    const operation = sqlOperation(sql);
    return traced(name ?? operation, operation, false, run);
  };
  const inTransaction = (tx: Queryable): Queryable => ({
    query: <R>(sql: string, params?: readonly unknown[]) => statement(sql, undefined, () => tx.query<R>(sql, params)),
    exec: (sql) => tx.exec(sql),
  });
  return {
    kind: db.kind,
    schema: db.schema,
    query: <R>(sql: string, params?: readonly unknown[], options?: QueryOptions) =>
      statement(sql, options?.name, () => db.query<R>(sql, params, options)),
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
    poolStats: db.poolStats?.bind(db),
    transaction: (fn, options) =>
      traced('transaction', 'BEGIN', true, () => db.transaction((tx) => fn(inTransaction(tx)), options)),
  };
}
