/**
 * Answers that could not be stored when they were given. A request that ran while the store was
 * unreachable (bypass, or a failed `complete`) was answered from the wallet, but a later copy would
 * find no answer in the store; if the wallet is down at that moment the copy gets 503 while the first
 * got 200. So the gateway keeps such answers in memory and writes them once the store answers again
 * (`storeLate`: never over another answer, never over another request's lock). The same path writes
 * the ledger's outcome after a void (`correct`: replaces an undecided 500/503/504 answer).
 *
 * Bounded: at most `maxEntries` answers, each for at most `maxAgeMs`; past that the wallet still
 * replays the outcome to a copy that reaches it.
 */
import type { IdempotencyStore, LateStoreResult, StoredAnswer } from './store.js';

export type LateAnswer = LateWrite | LateRelease;

export interface LateWrite {
  key: string;
  /** The lock token of the request's own begin, when that begin may have run late. */
  token?: string;
  fingerprint: string;
  answer: StoredAnswer;
  /** The ledger's outcome for this content (see IdempotencyStore.storeLate). */
  correct?: boolean;
  /** An outcome that can never change (a client's decided answer, a declined or voided row). */
  final?: boolean;
}

/** A request whose answer is not stored (undecided, or not the key's): only its late lock goes. */
export interface LateRelease {
  key: string;
  token: string;
  answer?: undefined;
  correct?: undefined;
  final?: undefined;
}

function entryId(entry: LateAnswer): string {
  return [entry.key, entry.token ?? '', entry.answer === undefined ? 'release' : 'write'].join('\u0000');
}

export interface LateAnswerWriterOptions {
  store: IdempotencyStore;
  retryMs?: number;
  maxAgeMs?: number;
  maxEntries?: number;
  onStored?: (entry: LateWrite, result: 'stored' | 'answered') => void;
  onError?: (error: unknown) => void;
}

type Pending = LateAnswer & { since: number };

export class LateAnswerWriter {
  readonly #store: IdempotencyStore;
  readonly #retryMs: number;
  readonly #maxAgeMs: number;
  readonly #maxEntries: number;
  readonly #options: LateAnswerWriterOptions;
  readonly #pending = new Map<string, Pending>();
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<void> | undefined;
  #closed = false;

  constructor(options: LateAnswerWriterOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#retryMs = options.retryMs ?? 250;
    this.#maxAgeMs = options.maxAgeMs ?? 300_000;
    this.#maxEntries = options.maxEntries ?? 50_000;
  }

  /** Answers waiting for the store. */
  get size(): number {
    return this.#pending.size;
  }

  /** Keeps the answer and tries to store it now (and again every retryMs while the store fails). */
  add(entry: LateAnswer): void {
    if (this.#closed) return;
    const id = entryId(entry);
    const existing = this.#pending.get(id);
    // The first answer is the one to keep, unless the ledger's outcome comes to correct it.
    if (existing !== undefined && !(entry.correct === true)) return;
    if (this.#pending.size >= this.#maxEntries && existing === undefined) {
      const oldest = this.#pending.keys().next();
      if (oldest.done !== true) this.#pending.delete(oldest.value);
    }
    this.#pending.set(id, { ...entry, since: Date.now() });
    this.#schedule(0);
  }

  /** One pass: tries every pending answer once; stops at the first store failure. */
  async flush(): Promise<void> {
    if (this.#pass !== undefined) return this.#pass;
    this.#pass = this.#flush().finally(() => {
      this.#pass = undefined;
    });
    return this.#pass;
  }

  async #flush(): Promise<void> {
    const now = Date.now();
    for (const [key, entry] of [...this.#pending]) {
      if (now - entry.since > this.#maxAgeMs) {
        this.#pending.delete(key);
        continue;
      }
      let result: LateStoreResult;
      try {
        if (entry.answer === undefined) {
          await this.#store.releaseLate(entry.key, entry.token);
          if (this.#pending.get(key) === entry) this.#pending.delete(key);
          continue;
        }
        result = await this.#store.storeLate(
          entry.key,
          entry.token,
          entry.fingerprint,
          entry.answer,
          entry.correct === true ? { correct: true, final: entry.final === true } : {},
        );
      } catch (error) {
        this.#options.onError?.(error);
        return; // the store is unreachable: the rest waits for the next pass
      }
      if (result === 'locked') continue; // another request owns the key now, or an orphaned lock expires later
      if (this.#pending.get(key) === entry) this.#pending.delete(key);
      this.#options.onStored?.(entry, result);
    }
  }

  #schedule(delayMs: number): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush().then(() => {
        if (this.#pending.size > 0) this.#schedule(this.#retryMs);
      });
    }, delayMs);
    this.#timer.unref();
  }

  /** Stops retrying after one last pass, bounded by `timeoutMs`. */
  async close(timeoutMs = 1000): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}
