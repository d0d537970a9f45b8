/**
 * In-process idempotency store: the same semantics as the Redis store, for a single gateway without
 * Redis (the embedded default). Copies wait on a promise instead of polling. Answers expire after the
 * ttl; a sweep (unref'd timer) and a size cap keep memory bounded.
 */
import { randomUUID } from 'node:crypto';
import type { AnswerRecord, BeginOptions, BeginResult, Completion, IdempotencyStore, StoredAnswer } from './store.js';

interface Lock {
  token: string;
  fingerprint: string;
  expiresAt: number;
  /** Resolves when the lock is completed or released. */
  settled: Promise<void>;
  settle: () => void;
}

export interface InProcessIdempotencyStoreOptions {
  ttlSeconds: number;
  /** Oldest answers are dropped beyond this many (the wallet still replays them). */
  maxEntries?: number;
  sweepIntervalMs?: number;
}

export class InProcessIdempotencyStore implements IdempotencyStore {
  readonly name = 'memory';
  readonly #answers = new Map<string, AnswerRecord & { expiresAt: number }>();
  readonly #locks = new Map<string, Lock>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: InProcessIdempotencyStoreOptions) {
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepIntervalMs ?? 60_000);
    this.#sweeper.unref();
  }

  async begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult> {
    let waited = false;
    for (;;) {
      const now = Date.now();
      const entry = this.#answers.get(key);
      if (entry !== undefined && entry.expiresAt > now) {
        if (entry.f !== fingerprint) return { kind: 'mismatch' }; // R8
        return { kind: 'replay', answer: { status: entry.s, body: entry.b }, waited }; // R6, R7
      }
      const lock = this.#locks.get(key);
      if (lock === undefined || lock.expiresAt <= now) {
        let settle = () => {};
        const settled = new Promise<void>((resolve) => (settle = resolve));
        lock?.settle();
        const token = randomUUID();
        this.#locks.set(key, { token, fingerprint, expiresAt: now + options.lockTtlMs, settled, settle });
        return { kind: 'acquired', token }; // R1-R3, R9
      }
      if (lock.fingerprint !== fingerprint) return { kind: 'mismatch' }; // R8
      if (options.waitUntil <= now) return { kind: 'in_progress' }; // R4, R5
      waited = true;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        lock.settled,
        new Promise<void>(
          (resolve) => (timer = setTimeout(resolve, Math.min(options.waitUntil, lock.expiresAt) - now)),
        ),
      ]);
      clearTimeout(timer);
    }
  }

  /** Never misses, so C never replaces an answer here. */
  async complete(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
  ): Promise<Completion> {
    const lock = this.#locks.get(key);
    if (lock !== undefined && lock.expiresAt > Date.now() && lock.token !== token) return 'taken';
    if (lock !== undefined) await this.release(key, lock.token);
    this.put(key, { f: fingerprint, s: answer.status, b: answer.body });
    return 'stored';
  }

  /** Its answers die with the process: a free key tells nothing of 200s answered before a restart. */
  unansweredAfter(): number {
    return 0;
  }

  /** Stores a record where the key has no answer (the void queue's pending answers too). */
  put(key: string, record: AnswerRecord): void {
    const existing = this.#answers.get(key);
    if (existing !== undefined && existing.expiresAt > Date.now()) return;
    this.#answers.delete(key);
    this.#answers.set(key, { ...record, expiresAt: Date.now() + this.#ttlMs });
    while (this.#answers.size > this.#maxEntries) {
      const oldest = this.#answers.keys().next();
      if (oldest.done === true) break;
      this.#answers.delete(oldest.value);
    }
  }

  /** O1: drops the answer of the void of `attempt`, once confirmed: the ledger answers copies. */
  drop(key: string, attempt: string): void {
    if (this.#answers.get(key)?.v === attempt) this.#answers.delete(key);
  }

  async release(key: string, token: string): Promise<boolean> {
    const lock = this.#locks.get(key);
    if (lock === undefined || lock.token !== token) return false;
    this.#locks.delete(key);
    lock.settle();
    return true;
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    for (const lock of this.#locks.values()) lock.settle();
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#answers) if (entry.expiresAt <= now) this.#answers.delete(key);
    for (const [key, lock] of this.#locks) {
      if (lock.expiresAt <= now) {
        this.#locks.delete(key);
        lock.settle();
      }
    }
  }
}
