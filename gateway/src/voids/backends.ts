/**
 * The outbox (docs/idempotency.md, O1-O3): where pending voids wait, each with its request's answer
 * (the undecided error) stored under the key until the void is confirmed. A Redis sorted set scored
 * by the next attempt time (durable, shared by every gateway), or an in-process map (no Redis, or
 * Redis down at the moment a void was due).
 */
import { parseVoidMember, voidMember, voidOutboxKeys, type ErrorCode, type MoneyKind } from '@phia/proto';
import { keyPrefixFor, type RedisClient } from '../redis.js';
import { answerKey } from '../idempotency/redis-store.js';
import { idempotencyKey, type AnswerRecord } from '../idempotency/store.js';
import { errorAnswer, httpStatusOf } from '../phia/contract.js';

/** One void to deliver: wallet `Void {kind, tx_id, error_code, fingerprint}`. */
export interface VoidJob {
  kind: MoneyKind;
  tx_id: string;
  /** The code the gateway answered the original request with. */
  error_code: ErrorCode;
  /**
   * moneyFingerprint of the request that was answered with the error: the wallet leaves alone a
   * different request stored under the same tx_id ("not_matching"). Empty: void whatever is there.
   */
  fingerprint: string;
  /**
   * The attempt (request id) answered with the error: the wallet leaves alone what another attempt
   * applied and answered ("kept"). Empty: no attempt named.
   */
  attempt_id: string;
  /**
   * N5: the void of a request answered 409 REQUEST_IN_PROGRESS (no undecided error): its tombstone
   * names the content without claiming the key's answer, which another attempt's error may claim.
   */
  refusal?: true;
  /**
   * S: the request took its key finding no answer in Redis; another attempt's application committed
   * after this (epoch ms) was never answered, and the void undoes it (docs/idempotency.md, C).
   */
  unanswered_after_ms?: number;
}

/** The answer a copy gets while the void is pending: the error, for the void's content and attempt. */
export function pendingAnswer(job: VoidJob): AnswerRecord {
  return {
    f: job.fingerprint,
    s: httpStatusOf(job.error_code),
    b: JSON.stringify(errorAnswer(job.error_code)),
    v: job.attempt_id,
  };
}

export interface ClaimedVoid {
  job: VoidJob;
  /** Attempts so far, this one included. */
  attempts: number;
}

export interface VoidBackend {
  readonly name: string;
  /** Queues the job and stores its answer where the key has none. */
  add(job: VoidJob, dueAt: number): Promise<void>;
  /** Takes up to `limit` due jobs and hides them for `leaseMs` (so two gateways rarely send the same void). */
  claimDue(now: number, limit: number, leaseMs: number): Promise<ClaimedVoid[]>;
  /** The wallet confirmed: forget the job, and (`drop`) its answer, so that the ledger answers copies. */
  done(job: VoidJob, answer: 'drop' | 'keep'): Promise<void>;
  /** Try again at `dueAt`. */
  retry(job: VoidJob, dueAt: number): Promise<void>;
  count(): Promise<number>;
}

/** One void, as its outbox entry: the attempt it undoes, under its key. */
export const member = (job: VoidJob): string => voidMember(job);

/** The job a member names; undefined when not written by this code. */
const parseMember = (text: string): VoidJob | undefined => parseVoidMember(text) as VoidJob | undefined;

/** Where the in-process backend keeps the answers of its voids (the in-process store). */
export interface AnswerSink {
  put(key: string, record: AnswerRecord): void;
  drop(key: string, attempt: string): void;
}

export class MemoryVoidBackend implements VoidBackend {
  readonly name = 'memory';
  readonly #jobs = new Map<string, { job: VoidJob; dueAt: number; attempts: number }>();
  readonly #answers: AnswerSink | undefined;

  /** `answers`: without Redis at all; with Redis (O3) the answer is written when the job moves there. */
  constructor(answers?: AnswerSink) {
    this.#answers = answers;
  }

  async add(job: VoidJob, dueAt: number): Promise<void> {
    this.#answers?.put(idempotencyKey(job.kind, job.tx_id), pendingAnswer(job));
    const key = member(job);
    if (!this.#jobs.has(key)) this.#jobs.set(key, { job, dueAt, attempts: 0 });
  }

  /** Every job held (O3: moved to Redis once it answers). */
  jobs(): VoidJob[] {
    return [...this.#jobs.values()].map((entry) => entry.job);
  }

  async claimDue(now: number, limit: number, leaseMs: number): Promise<ClaimedVoid[]> {
    const claimed: ClaimedVoid[] = [];
    for (const entry of this.#jobs.values()) {
      if (claimed.length >= limit) break;
      if (entry.dueAt > now) continue;
      entry.dueAt = now + leaseMs;
      entry.attempts++;
      claimed.push({ job: entry.job, attempts: entry.attempts });
    }
    return claimed;
  }

  async done(job: VoidJob, answer: 'drop' | 'keep'): Promise<void> {
    this.#jobs.delete(member(job));
    if (answer === 'drop') this.#answers?.drop(idempotencyKey(job.kind, job.tx_id), job.attempt_id);
  }

  async retry(job: VoidJob, dueAt: number): Promise<void> {
    const entry = this.#jobs.get(member(job));
    if (entry !== undefined) entry.dueAt = dueAt;
  }

  async count(): Promise<number> {
    return this.#jobs.size;
  }
}

// KEYS: zset, attempts hash. ARGV: now, limit, leaseUntil. Returns {member, attempts, member, attempts, ...}.
const CLAIM_LUA = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], m)
  local n = redis.call('HINCRBY', KEYS[2], m, 1)
  table.insert(out, m)
  table.insert(out, tostring(n))
end
return out
`;

// KEYS: answer, zset, enqueued hash. ARGV: answer record, ttlMs, member, dueAt, now, attempt. The
// answer only where there is none (R7), or over its attempt's own answer (C: that one never left); a
// job already queued keeps its schedule and its enqueue time.
const ADD_LUA = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  local ok, record = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  if ok and type(record) == 'table' and record.a == ARGV[6] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[3]) == 1 then redis.call('HSET', KEYS[3], ARGV[3], ARGV[5]) end
return 1
`;

// KEYS: zset, attempts hash, answer, enqueued hash. ARGV: member, attempt ('' keeps the answer). O1:
// the answer goes if it is this attempt's.
const DONE_LUA = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local text = redis.call('GET', KEYS[3])
if text then
  local ok, record = pcall(cjson.decode, text)
  if ok and type(record) == 'table' and record.v == ARGV[2] then redis.call('DEL', KEYS[3]) end
end
return 1
`;

interface VoidCommands {
  phiaVoidClaim(zset: string, attempts: string, now: number, limit: number, leaseUntil: number): Promise<string[]>;
  phiaVoidAdd(
    answer: string,
    zset: string,
    enqueued: string,
    record: string,
    ttlMs: number,
    member: string,
    dueAt: number,
    now: number,
    attempt: string,
  ): Promise<number>;
  phiaVoidDone(
    zset: string,
    attempts: string,
    answer: string,
    enqueued: string,
    member: string,
    attempt: string,
  ): Promise<number>;
}

export class RedisVoidBackend implements VoidBackend {
  readonly name = 'redis';
  readonly #redis: RedisClient & VoidCommands;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #zset: string;
  readonly #attempts: string;
  readonly #enqueued: string;

  /** `ttlSeconds`: how long a pending void's answer is kept (IDEMPOTENCY_TTL_SECONDS). */
  constructor(redis: RedisClient, keyPrefix: string, ttlSeconds = 86_400) {
    const client = redis as RedisClient & Partial<VoidCommands>;
    if (typeof client.phiaVoidClaim !== 'function') {
      redis.defineCommand('phiaVoidClaim', { numberOfKeys: 2, lua: CLAIM_LUA });
      redis.defineCommand('phiaVoidAdd', { numberOfKeys: 3, lua: ADD_LUA });
      redis.defineCommand('phiaVoidDone', { numberOfKeys: 4, lua: DONE_LUA });
    }
    this.#redis = redis as RedisClient & VoidCommands;
    this.#prefix = keyPrefixFor(redis, keyPrefix);
    this.#ttlMs = ttlSeconds * 1000;
    const keys = voidOutboxKeys(this.#prefix);
    this.#zset = keys.jobs;
    this.#attempts = keys.attempts;
    this.#enqueued = keys.enqueued;
  }

  #answerKey(job: VoidJob): string {
    return answerKey(this.#prefix, idempotencyKey(job.kind, job.tx_id));
  }

  async add(job: VoidJob, dueAt: number): Promise<void> {
    const record = JSON.stringify(pendingAnswer(job));
    await this.#redis.phiaVoidAdd(
      this.#answerKey(job),
      this.#zset,
      this.#enqueued,
      record,
      this.#ttlMs,
      member(job),
      dueAt,
      Date.now(),
      job.attempt_id,
    );
  }

  async claimDue(now: number, limit: number, leaseMs: number): Promise<ClaimedVoid[]> {
    const flat = await this.#redis.phiaVoidClaim(this.#zset, this.#attempts, now, limit, now + leaseMs);
    const claimed: ClaimedVoid[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const job = parseMember(flat[i] as string);
      if (job === undefined) {
        // Not written by this code: drop it rather than loop on it forever.
        await this.#redis.zrem(this.#zset, flat[i] as string);
        continue;
      }
      claimed.push({ job, attempts: Number(flat[i + 1]) });
    }
    return claimed;
  }

  async done(job: VoidJob, answer: 'drop' | 'keep'): Promise<void> {
    const attempt = answer === 'drop' ? job.attempt_id : '';
    await this.#redis.phiaVoidDone(
      this.#zset,
      this.#attempts,
      this.#answerKey(job),
      this.#enqueued,
      member(job),
      attempt,
    );
  }

  async retry(job: VoidJob, dueAt: number): Promise<void> {
    await this.#redis.zadd(this.#zset, 'XX', dueAt, member(job));
  }

  async count(): Promise<number> {
    return this.#redis.zcard(this.#zset);
  }
}
