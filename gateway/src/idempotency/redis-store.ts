/**
 * Redis idempotency store. Per key, two entries under the configured prefix:
 *   `<prefix>lock:<kind>:<tx_id>` = "<token>:<fingerprint>"   SET NX PX lockTtl (the running request)
 *   `<prefix>ans:<kind>:<tx_id>`  = JSON {f, s, b}              the first final answer, PX ttl
 * Taking the lock and checking for an answer are one Lua script, so a duplicate never slips between
 * them; completing and releasing are owner-only scripts (compare the token, then write/delete).
 * Scripts are registered once with defineCommand (EVALSHA, EVAL fallback).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { BeginOptions, BeginResult, IdempotencyStore, LateStoreResult, StoredAnswer } from './store.js';
import { pollDelay, UNDECIDED_STATUSES } from './store.js';

// KEYS: answer, lock. ARGV: token, fingerprint, lockTtlMs.
// Returns {'answer', json} | {'acquired'} | {'locked', fingerprint}.
const BEGIN_LUA = `
local answer = redis.call('GET', KEYS[1])
if answer then return {'answer', answer} end
local value = ARGV[1] .. ':' .. ARGV[2]
if redis.call('SET', KEYS[2], value, 'NX', 'PX', ARGV[3]) then return {'acquired'} end
local held = redis.call('GET', KEYS[2])
if not held then return {'retry'} end
local sep = string.find(held, ':', 1, true)
return {'locked', string.sub(held, sep + 1)}
`;

// KEYS: answer, lock. ARGV: token, answerJson, ttlMs. Owner only; never overwrites an answer.
const COMPLETE_LUA = `
local held = redis.call('GET', KEYS[2])
if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3], 'NX')
redis.call('DEL', KEYS[2])
return 1
`;

// KEYS: lock. ARGV: token. Owner only.
const RELEASE_LUA = `
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;

// KEYS: answer, lock. ARGV: token ('' for none), answerJson, ttlMs, correct ('1'/'0'), fingerprint,
// decided ('1'/'0'), final ('1'/'0'). See IdempotencyStore.storeLate. Returns 'stored' | 'answered' |
// 'locked'.
const STORE_LATE_LUA = `
local held = redis.call('GET', KEYS[2])
local mine = held and ARGV[1] ~= '' and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ':'
local existing = redis.call('GET', KEYS[1])
if existing then
  if ARGV[4] ~= '1' then return 'answered' end
  local ok, record = pcall(cjson.decode, existing)
  if not ok or type(record) ~= 'table' or record.a == 1 then return 'answered' end
  local undecided = record.s == 500 or record.s == 503 or record.s == 504
  if undecided then
    if record.f == ARGV[5] and ARGV[6] ~= '1' then return 'answered' end
  elseif ARGV[6] == '1' or ARGV[7] ~= '1' then
    return 'answered'
  end
elseif held and not mine and ARGV[4] ~= '1' then
  return 'locked'
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if mine then redis.call('DEL', KEYS[2]) end
return 'stored'
`;

interface IdempotencyCommands {
  phiaIdemStoreLate(
    answerKey: string,
    lockKey: string,
    token: string,
    answer: string,
    ttl: number,
    correct: string,
    fp: string,
    decided: string,
    final: string,
  ): Promise<string>;
  phiaIdemBegin(answerKey: string, lockKey: string, token: string, fp: string, ttl: number): Promise<string[]>;
  phiaIdemComplete(answerKey: string, lockKey: string, token: string, answer: string, ttl: number): Promise<number>;
  phiaIdemRelease(lockKey: string, token: string): Promise<number>;
}

/** Adds the store's scripts to a client once (idempotent). */
export function defineIdempotencyCommands(redis: Redis): Redis & IdempotencyCommands {
  const client = redis as Redis & Partial<IdempotencyCommands>;
  if (typeof client.phiaIdemBegin !== 'function') {
    redis.defineCommand('phiaIdemBegin', { numberOfKeys: 2, lua: BEGIN_LUA });
    redis.defineCommand('phiaIdemComplete', { numberOfKeys: 2, lua: COMPLETE_LUA });
    redis.defineCommand('phiaIdemRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    redis.defineCommand('phiaIdemStoreLate', { numberOfKeys: 2, lua: STORE_LATE_LUA });
  }
  return redis as Redis & IdempotencyCommands;
}

interface AnswerRecord {
  f: string;
  s: number;
  b: string;
  /** 1: an outcome that can never change (see IdempotencyStore.storeLate `final`): never replaced. */
  a?: 1;
}

export interface RedisIdempotencyStoreOptions {
  redis: Redis;
  /** Prefix of every key (e.g. `phia:`); tests use a random one. */
  keyPrefix: string;
  /** How long an answer is kept for replay (IDEMPOTENCY_TTL_SECONDS). */
  ttlSeconds: number;
  /** Close the client on close() (when the store owns it). */
  ownsClient?: boolean;
  onError?: (error: Error, operation: string) => void;
}

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly name = 'redis';
  readonly #redis: Redis & IdempotencyCommands;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #ownsClient: boolean;
  readonly #onError: (error: Error, operation: string) => void;

  constructor(options: RedisIdempotencyStoreOptions) {
    this.#redis = defineIdempotencyCommands(options.redis);
    this.#prefix = options.keyPrefix;
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#ownsClient = options.ownsClient ?? false;
    this.#onError = options.onError ?? (() => {});
  }

  #keys(key: string): [answer: string, lock: string] {
    return [`${this.#prefix}ans:${key}`, `${this.#prefix}lock:${key}`];
  }

  async begin(key: string, fingerprint: string, options: BeginOptions): Promise<BeginResult> {
    const [answerKey, lockKey] = this.#keys(key);
    // randomUUID draws from a buffered entropy pool: no randomFillSync call per request.
    const token = randomUUID();
    const waitUntil = Date.now() + options.waitMs;
    for (let attempt = 0; ; attempt++) {
      let reply: string[];
      try {
        reply = await this.#redis.phiaIdemBegin(answerKey, lockKey, token, fingerprint, options.lockTtlMs);
      } catch (error) {
        this.#onError(error as Error, 'begin');
        // A timed-out script may still run once Redis answers again: the token lets storeLate
        // replace the lock it would leave.
        return {
          kind: 'bypass',
          reason: (error as Error).message,
          token,
          ...(attempt > 0 ? { waitedForCopy: true } : {}),
        };
      }
      const [state, value] = reply;
      if (state === 'acquired') return { kind: 'acquired', token };
      if (state === 'answer') {
        const record = parseRecord(value);
        if (record === undefined) {
          // Unreadable entry (never written by this code): treat as absent, let the wallet answer.
          return { kind: 'bypass', reason: 'unreadable answer entry' };
        }
        if (record.f !== fingerprint) return { kind: 'mismatch' };
        return { kind: 'replay', answer: { status: record.s, body: record.b }, waited: attempt > 0 };
      }
      if (state === 'locked' && value !== fingerprint) return { kind: 'mismatch' };
      // Locked by a request with the same content (or the lock vanished between two calls): wait.
      const remaining = waitUntil - Date.now();
      if (remaining <= 0) return { kind: 'in_progress' };
      await sleep(Math.min(pollDelay(attempt), remaining));
    }
  }

  async complete(key: string, token: string, fingerprint: string, answer: StoredAnswer): Promise<boolean> {
    const [answerKey, lockKey] = this.#keys(key);
    const record: AnswerRecord = { f: fingerprint, s: answer.status, b: answer.body };
    try {
      return (await this.#redis.phiaIdemComplete(answerKey, lockKey, token, JSON.stringify(record), this.#ttlMs)) === 1;
    } catch (error) {
      this.#onError(error as Error, 'complete');
      return false;
    }
  }

  async storeLate(
    key: string,
    token: string | undefined,
    fingerprint: string,
    answer: StoredAnswer,
    options: { correct?: boolean; final?: boolean } = {},
  ): Promise<LateStoreResult> {
    const [answerKey, lockKey] = this.#keys(key);
    const correct = options.correct === true;
    const final = correct && options.final === true;
    const record: AnswerRecord = { f: fingerprint, s: answer.status, b: answer.body, ...(final ? { a: 1 } : {}) };
    const result = await this.#redis.phiaIdemStoreLate(
      answerKey,
      lockKey,
      token ?? '',
      JSON.stringify(record),
      this.#ttlMs,
      correct ? '1' : '0',
      fingerprint,
      UNDECIDED_STATUSES.has(answer.status) ? '0' : '1',
      final ? '1' : '0',
    );
    if (result === 'stored' || result === 'answered' || result === 'locked') return result;
    throw new Error(`unexpected storeLate reply ${String(result)}`);
  }

  async peek(key: string): Promise<{ fingerprint: string; answer: StoredAnswer } | undefined> {
    const [answerKey] = this.#keys(key);
    const record = parseRecord((await this.#redis.get(answerKey)) ?? undefined);
    return record === undefined ? undefined : { fingerprint: record.f, answer: { status: record.s, body: record.b } };
  }

  async releaseLate(key: string, token: string): Promise<void> {
    const [, lockKey] = this.#keys(key);
    await this.#redis.phiaIdemRelease(lockKey, token);
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
    try {
      return (await this.#redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (!this.#ownsClient) return;
    try {
      await this.#redis.quit();
    } catch {
      this.#redis.disconnect();
    }
  }
}

function parseRecord(text: string | undefined): AnswerRecord | undefined {
  if (text === undefined) return undefined;
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
