import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Database, PoolStats, QueryOptions } from './db/database.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

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

  private poolStats: (() => PoolStats | undefined) | undefined;

  constructor(collectDefaults = false) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'wallet_' });
    new Gauge({
      name: 'phia_build_info',
      help: 'Always 1: the running service, its version and the Node.js version',
      labelNames: ['service', 'version', 'node'] as const,
      registers: [this.registry],
    }).set({ service: 'wallet', version, node: process.version }, 1);
    // Read at scrape time; 0 while there is no PostgreSQL pool (PGlite has none).
    const stats = () => this.poolStats?.();
    const poolGauge = (name: string, help: string, field: keyof PoolStats) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const now = stats();
          if (now !== undefined) this.set(now[field]);
        },
      });
    poolGauge('wallet_db_pool_clients', 'PostgreSQL connections the pool holds, busy or idle', 'total');
    poolGauge('wallet_db_pool_idle_clients', 'PostgreSQL connections idle in the pool', 'idle');
    poolGauge('wallet_db_pool_waiting_requests', 'Requests waiting for a PostgreSQL connection', 'waiting');
  }

  /** Exports the pool's gauges from this database's pool (none for PGlite). */
  observePool(db: Database): void {
    this.poolStats = () => db.poolStats?.();
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
    poolStats: db.poolStats?.bind(db),
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
