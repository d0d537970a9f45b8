/**
 * Idempotency for money requests (contract rule 6), keyed by (request type, tx_id). The store is the
 * fast path only: the wallet is idempotent by itself and keeps every outcome for good, so a store
 * that is down or has forgotten an answer costs a wallet round trip, never a wrong answer.
 */

/** A final answer as sent: status and the exact body text. */
export interface StoredAnswer {
  status: number;
  body: string;
}

export type BeginResult =
  /** This caller owns the key: call the wallet, then `complete` (or `release`). */
  | { kind: 'acquired'; token: string }
  /** The first request's final answer: send it as is. `waited` tells whether it had to wait for it. */
  | { kind: 'replay'; answer: StoredAnswer; waited: boolean }
  /** The same key was used with different content. */
  | { kind: 'mismatch' }
  /** The first request was still running when the wait ended. */
  | { kind: 'in_progress' }
  /**
   * The store could not be used (e.g. Redis down): go straight to the wallet. `token` is the lock
   * token the failed attempt sent, when the command may still run late (a timed-out Redis script):
   * `storeLate` with it replaces such an orphaned lock with the answer. `waitedForCopy`: the store
   * failed while this request was waiting for a copy with the same content that held the key.
   */
  | { kind: 'bypass'; reason: string; token?: string; waitedForCopy?: boolean };

/**
 * How a late write ended: `stored`; `answered` (an answer is there already, nothing written);
 * `locked` (another request holds the key: try again later).
 */
export type LateStoreResult = 'stored' | 'answered' | 'locked';

/** Statuses that the ledger did not decide: the gateway voided them, and the ledger may know better. */
export const UNDECIDED_STATUSES: ReadonlySet<number> = new Set([500, 503, 504]);

export interface BeginOptions {
  /** How long a duplicate waits for the first request's answer. */
  waitMs: number;
  /** How long the lock lives if its owner dies without completing. */
  lockTtlMs: number;
}

export interface IdempotencyStore {
  readonly name: string;
  /**
   * Looks up `key`: replays a stored answer (or reports a mismatch), or takes the lock, or waits for
   * the running first request up to `waitMs`. Never throws: a store failure gives `bypass`.
   */
  begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult>;
  /** Owner only: stores the final answer for replay (for ttl) and drops the lock. Never throws. */
  complete(key: string, token: string, fingerprint: string, answer: StoredAnswer): Promise<boolean>;
  /** Owner only: drops the lock without an answer. Never throws. */
  release(key: string, token: string): Promise<boolean>;
  /**
   * Stores the final answer of a request that could not store it in time (the store was unreachable
   * when it began or completed). Written only when the key has no answer and no other request holds
   * it; a lock holding `token` (left by this request's own late-running begin) is replaced.
   *
   * With `correct`, the answer is the ledger's outcome for this content (its 200, its decline, or the
   * error its void recorded): the ledger is the durable record, so a running copy's lock does not stop
   * the write, and it replaces an undecided answer (500/503/504) already there that was given without
   * knowing the key's owner: one stored for other content (a variant that took the key while the
   * owner's answer was on its way), or for this content when the correction is decided. Between two
   * errors for the same content the first stays (it is what the first request got).
   *
   * `final` marks an outcome that can never change: a decided answer a client got, a declined row, a
   * voided row. A final answer is never replaced. A voided row's error also replaces a 200 read from
   * the ledger earlier (an applied row can still be reversed by the void of the attempt that applied
   * it, when that attempt was answered with an error). Throws when the store is unreachable (retry
   * later).
   */
  storeLate(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
    options?: { correct?: boolean; final?: boolean },
  ): Promise<LateStoreResult>;
  /**
   * Drops the lock `token` holds, if it holds one: the lock a timed-out begin may have taken once the
   * store ran it late, for a request whose answer is not to be stored. Throws when the store is
   * unreachable (retry later; commands on one connection run in order, so a retry after the late
   * begin finds its lock).
   */
  releaseLate(key: string, token: string): Promise<void>;
  /**
   * The stored answer for `key` and the fingerprint it was stored for, without taking any lock.
   * Throws when the store is unreachable.
   */
  peek(key: string): Promise<{ fingerprint: string; answer: StoredAnswer } | undefined>;
  /** Whether the store is reachable now (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** The store key of a money request: request type and tx_id (a refund may reuse its bet's tx_id). */
export function idempotencyKey(kind: string, txId: string): string {
  return `${kind}:${txId}`;
}

/** Poll delays while waiting for the first request: quick at first, then every 50 ms. */
export function pollDelay(attempt: number): number {
  return Math.min(5 * 2 ** attempt, 50);
}
