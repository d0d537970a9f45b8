/**
 * The periodic books check: counts player accounts below zero into wallet_books_negative_accounts, so
 * an alert fires without anyone running `phia-admin books check`. The series exists only while the
 * check runs (an operator can tell "off" from "0"). The full check (drift, unbalanced currencies)
 * reads every entry and stays on demand.
 */
import { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import type { Ledger } from './ledger/ledger.js';
import type { WalletMetrics } from './metrics.js';

/** Starts the check now and every intervalMs; returns its stop. */
export function watchBooks(ledger: Ledger, metrics: WalletMetrics, intervalMs: number, logger: Logger): () => void {
  const negative = new Gauge({
    name: 'wallet_books_negative_accounts',
    help: 'Player accounts with a balance below zero at the last periodic check (WALLET_BOOKS_CHECK_SECONDS): must be 0',
    registers: [metrics.registry],
  });
  let running = false;
  const check = async () => {
    if (running) return; // a slow database: skip a round rather than pile up
    running = true;
    try {
      negative.set(await ledger.countNegativeAccounts());
    } catch (error) {
      logger.warn({ err: error }, 'periodic books check failed');
    } finally {
      running = false;
    }
  };
  void check();
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    metrics.registry.removeSingleMetric('wallet_books_negative_accounts');
  };
}
