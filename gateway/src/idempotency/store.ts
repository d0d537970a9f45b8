/**
 * Idempotency for money requests (contract rule 6), keyed by (request type, tx_id); the policy is the
 * table of docs/idempotency.md. The store holds the key's lock while a request runs, and its answer:
 * one the ledger decided, or an undecided error whose void is pending (written by the void queue).
 * The ledger is the truth: a store that has no answer costs a wallet round trip, never a wrong answer.
 */

/** A final answer as sent: status and the exact body text. */
export interface StoredAnswer {
  status: number;
  body: string;
}

/**
 * A stored answer: the content it answers (`f`), status, body; `v`: the attempt whose void is
 * pending, for an undecided error (dropped when that void is confirmed); `a`: the attempt whose own
 * decided answer it is, which that attempt's void alone may replace (docs/idempotency.md, C).
 */
export interface AnswerRecord {
  f: string;
  s: number;
  b: string;
  v?: string;
  a?: string;
}

/**
 * What `complete` did with a decided answer. `stored`: written, or the key already had its answer.
 * `taken`: another request holds the key, which is left to it. `missed`: Redis failed; an attempt's
 * own answer is dropped (C: it must not leave), any other waits in memory and is written once Redis
 * answers (O3).
 */
export type Completion = 'stored' | 'taken' | 'missed';

/**
 * C: whose answer `complete` stores. `own`: the wallet's decided answer to `attempt`'s call, tried once
 * and never held; the record names the attempt. Otherwise a settled answer (S, N1, N2), held while
 * Redis fails, that replaces `attempt`'s own answer (a `complete` that ran late, after its void).
 */
export interface AnswerOf {
  attempt: string;
  own: boolean;
}

export type BeginResult =
  /** This caller owns the key: call the wallet, then `complete` (or `release`). */
  | { kind: 'acquired'; token: string }
  /** The key's stored answer: send it as is. `waited` tells whether it had to wait for it. */
  | { kind: 'replay'; answer: StoredAnswer; waited: boolean }
  /** The key is held or answered for other content. */
  | { kind: 'mismatch' }
  /** A copy still held the key when the wait ended. */
  | { kind: 'in_progress' }
  /**
   * The store could not be used (Redis down, slow or paused). `token`: a try that timed out may still
   * take the lock under it later; the caller completes or releases with it.
   */
  | { kind: 'unreachable'; reason: string; token: string };

export interface BeginOptions {
  /** Epoch ms until which a copy waits for the running request's answer. */
  waitUntil: number;
  /** How long the lock lives if its owner dies without completing. */
  lockTtlMs: number;
}

export interface IdempotencyStore {
  readonly name: string;
  /** Replays the key's answer (or a mismatch), or takes the lock, or waits for the running copy. Never throws. */
  begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult>;
  /**
   * Stores a decided answer where the key has none, and drops the caller's lock (`token`; undefined
   * when settled without the store, N1/N2). Never throws.
   */
  complete(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
    of?: AnswerOf,
  ): Promise<Completion>;
  /**
   * C: epoch ms after which no decided answer of a key this store found free has left (it holds each
   * before it leaves, for the ttl); 0 when it cannot tell (an in-process store forgets on restart).
   */
  unansweredAfter(arrivedAt: number): number;
  /** Owner only: drops the lock without an answer. Never throws. */
  release(key: string, token: string): Promise<boolean>;
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

export function parseRecord(text: string | undefined | null): AnswerRecord | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const value = JSON.parse(text) as Partial<AnswerRecord>;
    if (typeof value.f === 'string' && typeof value.s === 'number' && typeof value.b === 'string') {
      return value as AnswerRecord;
    }
  } catch {
    // fall through
  }
  return undefined;
}
