/**
 * Prometheus metrics, in a registry of the app's own (several apps in one process never collide).
 */
import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<'action' | 'status' | 'code'>;
  requestDuration: Histogram<'action'>;
  replays: Counter<'action'>;
  lockWaits: Counter<'action' | 'outcome'>;
  storeBypass: Counter<'operation'>;
  walletCalls: Histogram<'method' | 'outcome'>;
  walletErrors: Counter<'method' | 'code'>;
  voidsEnqueued: Counter<'kind' | 'backend'>;
  voidsDelivered: Counter<'kind'>;
  voidFailures: Counter<'kind'>;
  voidsUnappliable: Counter<'kind' | 'code'>;
  pendingVoids: Gauge<'backend'>;
  settledWithoutStore: Counter<'action' | 'outcome'>;
  admissionRefusals: Counter<'action' | 'answer'>;
}

/**
 * Voids waiting for the wallet, by backend: `redis` is the shared outbox (the same count on every
 * gateway: take the max across gateways), `memory` this gateway's own (sum them). Absent: no such backend.
 */
export interface PendingVoids {
  redis?: number;
  memory: number;
}

export function createMetrics(options: {
  pendingVoids: () => Promise<PendingVoids>;
  defaultMetrics?: boolean;
}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'phia_gateway_' });
  const registers = [registry];
  new Gauge({
    name: 'phia_build_info',
    help: 'Always 1: the running service, its version and the Node.js version',
    labelNames: ['service', 'version', 'node'],
    registers,
  }).set({ service: 'gateway', version, node: process.version }, 1);
  return {
    registry,
    requests: new Counter({
      name: 'phia_requests_total',
      help: 'PHIA requests answered, by action, HTTP status and contract code (ok for 200)',
      labelNames: ['action', 'status', 'code'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'phia_request_duration_seconds',
      help: 'Time to answer a PHIA request',
      labelNames: ['action'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 6],
      registers,
    }),
    replays: new Counter({
      name: 'phia_idempotent_replays_total',
      help: 'Money requests answered from the idempotency store',
      labelNames: ['action'],
      registers,
    }),
    lockWaits: new Counter({
      name: 'phia_idempotency_lock_waits_total',
      help: 'Duplicates that waited for a running first request (outcome: replay, in_progress)',
      labelNames: ['action', 'outcome'],
      registers,
    }),
    storeBypass: new Counter({
      name: 'phia_idempotency_store_errors_total',
      help: 'Idempotency store failures: begin (the request was settled with the ledger), complete (the answer was not stored)',
      labelNames: ['operation'],
      registers,
    }),
    walletCalls: new Histogram({
      name: 'phia_wallet_call_duration_seconds',
      help: 'gRPC calls to the wallet, by method and outcome (ok or contract code)',
      labelNames: ['method', 'outcome'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    }),
    walletErrors: new Counter({
      name: 'phia_wallet_call_errors_total',
      help: 'Failed gRPC calls to the wallet, by method and contract code',
      labelNames: ['method', 'code'],
      registers,
    }),
    voidsEnqueued: new Counter({
      name: 'phia_voids_enqueued_total',
      help: 'Voids queued after an error answer the ledger did not decide',
      labelNames: ['kind', 'backend'],
      registers,
    }),
    voidsDelivered: new Counter({
      name: 'phia_voids_delivered_total',
      help: 'Voids the wallet confirmed',
      labelNames: ['kind'],
      registers,
    }),
    voidFailures: new Counter({
      name: 'phia_void_attempt_failures_total',
      help: 'Void attempts that failed and will be retried',
      labelNames: ['kind'],
      registers,
    }),
    voidsUnappliable: new Counter({
      name: 'phia_voids_unappliable_total',
      help: 'Voids the wallet refused with a final decline (retrying cannot apply them; money may have moved for an error answer): should stay 0',
      labelNames: ['kind', 'code'],
      registers,
    }),
    pendingVoids: new Gauge({
      name: 'phia_pending_voids',
      help: 'Voids waiting for the wallet to confirm them, by backend: redis = the shared outbox (same on every gateway), memory = this gateway',
      labelNames: ['backend'],
      registers,
      async collect() {
        const pending = await options.pendingVoids();
        if (pending.redis !== undefined) this.set({ backend: 'redis' }, pending.redis);
        this.set({ backend: 'memory' }, pending.memory);
      },
    }),
    settledWithoutStore: new Counter({
      name: 'phia_settled_without_store_total',
      help: 'Money requests settled with the ledger because the idempotency store was unreachable, by the answer code (unsettled: void queued)',
      labelNames: ['action', 'outcome'],
      registers,
    }),
    admissionRefusals: new Counter({
      name: 'phia_admission_refusals_total',
      help: 'PHIA requests refused before any work while the gateway was full (answer: 503 for a balance, closed for a money request)',
      labelNames: ['action', 'answer'],
      registers,
    }),
  };
}
