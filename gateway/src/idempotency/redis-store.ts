/**
 * Redis idempotency store. Per key, two entries under the configured prefix:
 *   `<prefix>lock:<kind>:<tx_id>` = "<token>:<fingerprint>"   SET NX PX lockTtl (the running request)
 *   `<prefix>ans:<kind>:<tx_id>`  = JSON AnswerRecord           the key's answer, PX ttl, never replaced
 * Taking the lock and checking for an answer are one script, so a copy never slips between them;
 * completing and releasing are owner-only scripts. The void queue writes and drops the answers of
 * undecided errors (voids/backends.ts), under the same names (answerKey).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyPrefixFor, type RedisClient } from '../redis.js';
import type {
  AnswerOf,
  AnswerRecord,
  BeginOptions,
  BeginResult,
  Completion,
  IdempotencyStore,
  StoredAnswer,
} from './store.js';
import { parseRecord, pollDelay } from './store.js';

/** The Redis key of a key's answer. */
export function answerKey(prefix: string, key: string): string {
  return `${prefix}ans:${key}`;
}

// KEYS: answer, lock. ARGV: token, fingerprint, lockTtlMs. The lock may be this token's already (a
// timed-out try that ran late). Returns {'answer', json} | {'acquired'} | {'locked', fingerprint} | {'retry'}.
const BEGIN_LUA = `
local answer = redis.call('GET', KEYS[1])
if answer then return {'answer', answer} end
local mine = ARGV[1] .. ':' .. ARGV[2]
if redis.call('SET', KEYS[2], mine, 'NX', 'PX', ARGV[3]) then return {'acquired'} end
local held = redis.call('GET', KEYS[2])
if not held then return {'retry'} end
if held == mine then return {'acquired'} end
local sep = string.find(held, ':', 1, true)
return {'locked', string.sub(held, sep + 1)}
`;

// KEYS: answer, lock. ARGV: token ('' for none), answerJson, ttlMs, attempt ('' for none). Leaves a
// key another request holds to that one (its call reads the same ledger row). Never overwrites an
// answer, except `attempt`'s own (C: it never left; its void's answer replaces it).
const COMPLETE_LUA = `
local held = redis.call('GET', KEYS[2])
if held and string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
if not redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'NX') and ARGV[4] ~= '' then
  local ok, record = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  if ok and type(record) == 'table' and record.a == ARGV[4] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
if held then redis.call('DEL', KEYS[2]) end
return 1
`;

// KEYS: lock. ARGV: token. Owner only.
const RELEASE_LUA = `
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;

interface IdempotencyCommands {
  phiaIdemBegin(answerKey: string, lockKey: string, token: string, fp: string, ttl: number): Promise<string[]>;
  phiaIdemComplete(
    answerKey: string,
    lockKey: string,
    token: string,
    answer: string,
    ttl: number,
    attempt: string,
  ): Promise<number>;
  phiaIdemRelease(lockKey: string, token: string): Promise<number>;
}

function defineCommands(redis: RedisClient): RedisClient & IdempotencyCommands {
  const client = redis as RedisClient & Partial<IdempotencyCommands>;
  if (typeof client.phiaIdemBegin !== 'function') {
    redis.defineCommand('phiaIdemBegin', { numberOfKeys: 2, lua: BEGIN_LUA });
    redis.defineCommand('phiaIdemComplete', { numberOfKeys: 2, lua: COMPLETE_LUA });
    redis.defineCommand('phiaIdemRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
  }
  return redis as RedisClient & IdempotencyCommands;
}

/** `begin` is tried again this long when Redis fails (slow, paused or away) before giving up. */
const RETRY_MS = 1000;
const RETRY_PAUSE_MS = 50;
/** O3: decided answers Redis missed, held until it answers; the oldest go first (the ledger has them). */
const MAX_PENDING = 100_000;
const FLUSH_INTERVAL_MS = 500;
/** C: how far the gateway's clock and PostgreSQL's may disagree, taken off the horizon. */
const CLOCK_SKEW_MS = 60_000;

/** A `complete` to run: token ('' for none), the answer record, the attempt whose own answer it replaces. */
type Pending = [token: string, record: string, replaces: string];

export interface RedisIdempotencyStoreOptions {
  redis: RedisClient;
  /** Prefix of every key (e.g. `phia:`); tests use a random one. */
  keyPrefix: string;
  /** How long an answer is kept for replay (IDEMPOTENCY_TTL_SECONDS). */
  ttlSeconds: number;
  onError?: (error: Error, operation: string) => void;
}

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly name = 'redis';
  readonly #redis: RedisClient & IdempotencyCommands;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #onError: (error: Error, operation: string) => void;
  /** O3: what Redis missed, by key, in the order they failed. */
  readonly #pending = new Map<string, Pending>();
  readonly #flusher: NodeJS.Timeout;
  #flushing: Promise<void> | undefined;
  readonly #onReady = () => void this.flush();

  constructor(options: RedisIdempotencyStoreOptions) {
    this.#redis = defineCommands(options.redis);
    this.#prefix = keyPrefixFor(options.redis, options.keyPrefix);
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#onError = options.onError ?? (() => {});
    options.redis.on('ready', this.#onReady);
    this.#flusher = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.#flusher.unref();
  }

  #keys(key: string): [answer: string, lock: string] {
    return [answerKey(this.#prefix, key), `${this.#prefix}lock:${key}`];
  }

  async begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult> {
    const [answerKey, lockKey] = this.#keys(key);
    const token = randomUUID();
    const retryUntil = Date.now() + RETRY_MS;
    if (this.#pending.has(key)) await this.#write(key); // O3: this key's answer first
    let waiting = false;
    for (let attempt = 0; ; attempt++) {
      let reply: string[];
      try {
        reply = await this.#redis.phiaIdemBegin(answerKey, lockKey, token, fingerprint, options.lockTtlMs);
      } catch (error) {
        this.#onError(error as Error, 'begin');
        if (waiting && Date.now() >= options.waitUntil) return { kind: 'in_progress' }; // R4: the wait is over
        if (Date.now() >= retryUntil) return { kind: 'unreachable', reason: (error as Error).message, token }; // N1-N5
        await sleep(RETRY_PAUSE_MS);
        continue;
      }
      const [state, value] = reply;
      if (state === 'acquired') return { kind: 'acquired', token }; // R1-R3, R9
      if (state === 'answer') {
        const record = parseRecord(value);
        // Never written by this code: the ledger answers instead.
        if (record === undefined) return { kind: 'unreachable', reason: 'unreadable answer entry', token };
        if (record.f !== fingerprint) return { kind: 'mismatch' }; // R8
        return { kind: 'replay', answer: { status: record.s, body: record.b }, waited: attempt > 0 }; // R6, R7
      }
      if (state === 'locked' && value !== fingerprint) return { kind: 'mismatch' }; // R8
      // R4, R5: a copy with the same content holds the key (or the lock vanished between two calls).
      waiting = true;
      const remaining = options.waitUntil - Date.now();
      if (remaining <= 0) return { kind: 'in_progress' };
      await sleep(Math.min(pollDelay(attempt), remaining));
    }
  }

  async complete(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
    of?: AnswerOf,
  ): Promise<Completion> {
    const own = of?.own === true;
    const record: AnswerRecord = {
      f: fingerprint,
      s: answer.status,
      b: answer.body,
      ...(own ? { a: of.attempt } : {}),
    };
    const entry: Pending = [token ?? '', JSON.stringify(record), own ? '' : (of?.attempt ?? '')];
    if (own) return this.#run(key, entry); // C: an answer Redis missed does not leave, so it is never held
    this.#pending.set(key, entry);
    while (this.#pending.size > MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value as string);
    return this.#write(key);
  }

  unansweredAfter(arrivedAt: number): number {
    return Math.max(0, arrivedAt - this.#ttlMs + CLOCK_SKEW_MS);
  }

  /** O3: writes every answer Redis missed, oldest first; stops at the first failure. Never throws. */
  async flush(): Promise<void> {
    if (this.#pending.size === 0 || this.#flushing !== undefined) return this.#flushing;
    this.#flushing = (async () => {
      for (const key of [...this.#pending.keys()]) if ((await this.#write(key)) === 'missed') break;
    })().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  /** One try (the answer is on its way out: no retry delays it); what fails stays pending. */
  async #write(key: string): Promise<Completion> {
    const entry = this.#pending.get(key);
    if (entry === undefined) return 'stored'; // written meanwhile by a flush
    const done = await this.#run(key, entry);
    if (done !== 'missed' && this.#pending.get(key) === entry) this.#pending.delete(key);
    return done;
  }

  async #run(key: string, [token, record, replaces]: Pending): Promise<Completion> {
    const [answerKey, lockKey] = this.#keys(key);
    try {
      const done = await this.#redis.phiaIdemComplete(answerKey, lockKey, token, record, this.#ttlMs, replaces);
      return done === 1 ? 'stored' : 'taken';
    } catch (error) {
      this.#onError(error as Error, 'complete');
      return 'missed';
    }
  }

  async release(key: string, token: string): Promise<boolean> {
    const [, lockKey] = this.#keys(key);
    try {
      return (await this.#redis.phiaIdemRelease(lockKey, token)) === 1;
    } catch (error) {
      this.#onError(error as Error, 'release');
      return false;
    }
  }

  async ping(): Promise<boolean> {
    return (await this.#redis.ping().catch(() => '')) === 'PONG';
  }

  /** The client belongs to the app, which closes it; a last flush tries what is pending. */
  async close(): Promise<void> {
    clearInterval(this.#flusher);
    this.#redis.off('ready', this.#onReady);
    await this.flush();
  }
}
