import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Database, QueryOptions } from './db/database.js';

/** The wallet's own metrics, on a registry of its own (tests run several wallets in one process). */
export class WalletMetrics {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: 'wallet_calls_total',
    help: 'gRPC calls by method and outcome code (OK or the contract code)',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  readonly callSeconds = new Histogram({
    name: 'wallet_call_duration_seconds',
    help: 'gRPC call duration, database included',
    labelNames: ['method'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly dbTransactionSeconds = new Histogram({
    name: 'wallet_db_transaction_duration_seconds',
    help: 'Database transaction duration (BEGIN to COMMIT or ROLLBACK, or one ledger function call), by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor(collectDefaults = false) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'wallet_' });
  }

  /** Serves GET /metrics on host:port; resolves with the server once listening. */
  serve(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/metrics') {
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          },
          () => {
            res.writeHead(500).end();
          },
        );
        return;
      }
      res.writeHead(404).end();
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}

/** The same database, with every transaction (and every ledger function call) timed into the metrics. */
export function instrumentDatabase(db: Database, metrics: WalletMetrics): Database {
  return {
    kind: db.kind,
    schema: db.schema,
    async query<R>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
      // A named statement is one of the ledger's calls, a transaction of its own: timed as one.
      if (options?.name === undefined) return db.query<R>(sql, params, options);
      const stop = metrics.dbTransactionSeconds.startTimer();
      try {
        const result = await db.query<R>(sql, params, options);
        stop({ outcome: 'commit' });
        return result;
      } catch (error) {
        stop({ outcome: 'rollback' });
        throw error;
      }
    },
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
    async transaction(fn, options) {
      const stop = metrics.dbTransactionSeconds.startTimer();
      try {
        const value = await db.transaction(fn, options);
        stop({ outcome: 'commit' });
        return value;
      } catch (error) {
        stop({ outcome: 'rollback' });
        throw error;
      }
    },
  };
}
