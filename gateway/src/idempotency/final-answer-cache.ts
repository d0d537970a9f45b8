/**
 * An in-process LRU of final answers in front of a shared idempotency store (Redis), so that a
 * duplicate of a recent request is answered without a Redis round trip.
 *
 * Only answers that can never change are kept: 200s and the declines the wallet decided and stored
 * for good (insufficient funds, session problems, blocked player, ...). Undecided errors (500, 503,
 * 504) are never kept, since they may be corrected later from the ledger; neither are 409
 * REQUEST_IN_PROGRESS and IDEMPOTENCY_MISMATCH, which belong to one request, not to the key. Since a
 * kept answer is the one the shared store and the wallet give for that key for as long as they keep
 * it, gateways sharing the store stay consistent whichever of them a duplicate reaches.
 *
 * An entry is kept at most the store's TTL, and the number of entries is bounded (least recently
 * used first out).
 */
import { isErrorCode } from '@phia/proto';
import { isFinalDecline } from '../phia/contract.js';
import type { BeginOptions, BeginResult, IdempotencyStore, LateStoreResult, StoredAnswer } from './store.js';

/** Whether an answer can never change for its key (and may be kept in process). */
export function isFinalAnswer(answer: StoredAnswer): boolean {
  if (answer.status === 200) return true;
  if (answer.status >= 500) return false;
  let code: unknown;
  try {
    code = (JSON.parse(answer.body) as { code?: unknown }).code;
  } catch {
    return false;
  }
  return isErrorCode(code) && isFinalDecline(code);
}

interface Entry {
  fingerprint: string;
  answer: StoredAnswer;
  expiresAt: number;
}

export interface FinalAnswerCacheOptions {
  /** Most entries kept; 0 turns the cache off. */
  maxEntries: number;
  /** Longest an entry is kept (the store's TTL). */
  ttlMs: number;
  now?: () => number;
}

export class FinalAnswerCache implements IdempotencyStore {
  readonly #inner: IdempotencyStore;
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Map order is the recency order: the first key is the least recently used. */
  readonly #entries = new Map<string, Entry>();

  constructor(inner: IdempotencyStore, options: FinalAnswerCacheOptions) {
    this.#inner = inner;
    this.#max = Math.max(0, Math.floor(options.maxEntries));
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  get name(): string {
    return this.#inner.name;
  }

  /** Entries held now (tests, metrics). */
  get size(): number {
    return this.#entries.size;
  }

  async begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult> {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      if (entry.expiresAt > this.#now()) {
        this.#entries.delete(key);
        this.#entries.set(key, entry);
        if (entry.fingerprint !== fingerprint) return { kind: 'mismatch' };
        return { kind: 'replay', answer: entry.answer, waited: false };
      }
      this.#entries.delete(key);
    }
    const result = await this.#inner.begin(key, fingerprint, options);
    if (result.kind === 'replay') this.#remember(key, fingerprint, result.answer);
    return result;
  }

  async complete(key: string, token: string, fingerprint: string, answer: StoredAnswer): Promise<boolean> {
    const stored = await this.#inner.complete(key, token, fingerprint, answer);
    // Kept only once the shared store holds it: then it is the key's answer everywhere.
    if (stored) this.#remember(key, fingerprint, answer);
    return stored;
  }

  storeLate(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
    options?: { correct?: boolean },
  ): Promise<LateStoreResult> {
    // Not kept here: what the shared store ends up holding may be another answer (the first one).
    return this.#inner.storeLate(key, token, fingerprint, answer, options);
  }

  releaseLate(key: string, token: string): Promise<void> {
    return this.#inner.releaseLate(key, token);
  }

  async peek(key: string): Promise<{ fingerprint: string; answer: StoredAnswer } | undefined> {
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.expiresAt > this.#now())
      return { fingerprint: entry.fingerprint, answer: entry.answer };
    return this.#inner.peek(key);
  }

  release(key: string, token: string): Promise<boolean> {
    return this.#inner.release(key, token);
  }

  ping(): Promise<boolean> {
    return this.#inner.ping();
  }

  async close(): Promise<void> {
    this.#entries.clear();
    await this.#inner.close();
  }

  #remember(key: string, fingerprint: string, answer: StoredAnswer): void {
    if (this.#max === 0 || !isFinalAnswer(answer)) return;
    this.#entries.delete(key);
    this.#entries.set(key, { fingerprint, answer, expiresAt: this.#now() + this.#ttlMs });
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
  }
}
