/**
 * In-process idempotency store: the same semantics as the Redis store, for a single gateway without
 * Redis (the embedded default). Duplicates wait on a promise instead of polling. Answers expire after
 * the ttl; a sweep (unref'd timer) and a size cap keep memory bounded.
 */
import { randomBytes } from 'node:crypto';
import type { BeginOptions, BeginResult, IdempotencyStore, LateStoreResult, StoredAnswer } from './store.js';
import { UNDECIDED_STATUSES } from './store.js';

interface Lock {
  token: string;
  fingerprint: string;
  expiresAt: number;
  /** Resolves when the lock is completed or released. */
  settled: Promise<void>;
  settle: () => void;
}

interface Entry {
  fingerprint: string;
  answer: StoredAnswer;
  expiresAt: number;
  /** An outcome that can never change (see IdempotencyStore.storeLate `final`): never replaced. */
  final?: boolean;
}

export interface InProcessIdempotencyStoreOptions {
  ttlSeconds: number;
  /** Oldest answers are dropped beyond this many (the wallet still replays them). */
  maxEntries?: number;
  sweepIntervalMs?: number;
}

export class InProcessIdempotencyStore implements IdempotencyStore {
  readonly name = 'memory';
  readonly #answers = new Map<string, Entry>();
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

  get size(): number {
    return this.#answers.size;
  }

  async begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult> {
    const waitUntil = Date.now() + options.waitMs;
    let waited = false;
    for (;;) {
      const now = Date.now();
      const entry = this.#answers.get(key);
      if (entry !== undefined && entry.expiresAt > now) {
        if (entry.fingerprint !== fingerprint) return { kind: 'mismatch' };
        return { kind: 'replay', answer: entry.answer, waited };
      }
      const lock = this.#locks.get(key);
      if (lock === undefined || lock.expiresAt <= now) {
        const token = randomBytes(16).toString('hex');
        let settle = () => {};
        const settled = new Promise<void>((resolve) => (settle = resolve));
        lock?.settle();
        this.#locks.set(key, { token, fingerprint, expiresAt: now + options.lockTtlMs, settled, settle });
        return { kind: 'acquired', token };
      }
      if (lock.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (waitUntil <= now) return { kind: 'in_progress' };
      const remaining = Math.min(waitUntil, lock.expiresAt) - now;
      waited = true;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        lock.settled,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(remaining, 1)))),
      ]);
      clearTimeout(timer);
    }
  }

  async complete(key: string, token: string, fingerprint: string, answer: StoredAnswer): Promise<boolean> {
    const lock = this.#locks.get(key);
    if (lock === undefined || lock.token !== token) return false;
    if (!this.#answers.has(key)) {
      this.#answers.set(key, { fingerprint, answer, expiresAt: Date.now() + this.#ttlMs });
      this.#trim();
    }
    this.#locks.delete(key);
    lock.settle();
    return true;
  }

  async storeLate(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
    options: { correct?: boolean; final?: boolean } = {},
  ): Promise<LateStoreResult> {
    const now = Date.now();
    const correct = options.correct === true;
    const final = correct && options.final === true;
    const lock = this.#locks.get(key);
    const mine = lock !== undefined && token !== undefined && lock.token === token;
    const existing = this.#answers.get(key);
    if (existing !== undefined && existing.expiresAt > now) {
      if (!correct || existing.final === true) return 'answered';
      const newDecided = !UNDECIDED_STATUSES.has(answer.status);
      if (UNDECIDED_STATUSES.has(existing.answer.status)) {
        if (existing.fingerprint === fingerprint && !newDecided) return 'answered';
      } else if (newDecided || !final) {
        return 'answered';
      }
    } else if (lock !== undefined && lock.expiresAt > now && !mine && !correct) {
      return 'locked';
    }
    this.#answers.delete(key); // re-inserted last: the newest entry for the size cap
    this.#answers.set(key, {
      fingerprint,
      answer,
      expiresAt: now + this.#ttlMs,
      ...(final ? { final: true } : {}),
    });
    this.#trim();
    if (mine) {
      this.#locks.delete(key);
      lock.settle();
    }
    return 'stored';
  }

  async peek(key: string): Promise<{ fingerprint: string; answer: StoredAnswer } | undefined> {
    const entry = this.#answers.get(key);
    if (entry === undefined || entry.expiresAt <= Date.now()) return undefined;
    return { fingerprint: entry.fingerprint, answer: entry.answer };
  }

  async releaseLate(key: string, token: string): Promise<void> {
    await this.release(key, token);
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

  #trim(): void {
    // Maps iterate in insertion order: the first keys are the oldest answers.
    while (this.#answers.size > this.#maxEntries) {
      const oldest = this.#answers.keys().next();
      if (oldest.done === true) break;
      this.#answers.delete(oldest.value);
    }
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
