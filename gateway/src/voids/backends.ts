/**
 * Where pending voids wait: a Redis sorted set scored by the next attempt time (durable, shared by
 * every gateway), or an in-process map (no Redis, or Redis down at the moment a void was due).
 */
import type { Redis } from 'ioredis';
import type { ErrorCode, MoneyKind } from '@phia/proto';

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
}

export interface ClaimedVoid {
  job: VoidJob;
  /** Attempts so far, this one included. */
  attempts: number;
}

export interface VoidBackend {
  readonly name: string;
  add(job: VoidJob, dueAt: number): Promise<void>;
  /** Takes up to `limit` due jobs and hides them for `leaseMs` (so two gateways rarely send the same void). */
  claimDue(now: number, limit: number, leaseMs: number): Promise<ClaimedVoid[]>;
  /** The wallet confirmed: forget the job. */
  done(job: VoidJob): Promise<void>;
  /** Try again at `dueAt`. */
  retry(job: VoidJob, dueAt: number): Promise<void>;
  count(): Promise<number>;
}

function member(job: VoidJob): string {
  return JSON.stringify([job.kind, job.tx_id, job.error_code, job.fingerprint, job.attempt_id]);
}

function parseMember(text: string): VoidJob | undefined {
  try {
    const [kind, txId, code, fingerprint, attemptId] = JSON.parse(text) as [
      MoneyKind,
      string,
      ErrorCode,
      string?,
      string?,
    ];
    if (typeof kind === 'string' && typeof txId === 'string' && typeof code === 'string') {
      return {
        kind,
        tx_id: txId,
        error_code: code,
        fingerprint: typeof fingerprint === 'string' ? fingerprint : '',
        attempt_id: typeof attemptId === 'string' ? attemptId : '',
      };
    }
  } catch {
    // fall through
  }
  return undefined;
}

export class MemoryVoidBackend implements VoidBackend {
  readonly name = 'memory';
  readonly #jobs = new Map<string, { job: VoidJob; dueAt: number; attempts: number }>();

  async add(job: VoidJob, dueAt: number): Promise<void> {
    const key = member(job);
    if (!this.#jobs.has(key)) this.#jobs.set(key, { job, dueAt, attempts: 0 });
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

  async done(job: VoidJob): Promise<void> {
    this.#jobs.delete(member(job));
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

interface VoidCommands {
  phiaVoidClaim(zset: string, attempts: string, now: number, limit: number, leaseUntil: number): Promise<string[]>;
}

export class RedisVoidBackend implements VoidBackend {
  readonly name = 'redis';
  readonly #redis: Redis & VoidCommands;
  readonly #zset: string;
  readonly #attempts: string;

  constructor(redis: Redis, keyPrefix: string) {
    const client = redis as Redis & Partial<VoidCommands>;
    if (typeof client.phiaVoidClaim !== 'function') {
      redis.defineCommand('phiaVoidClaim', { numberOfKeys: 2, lua: CLAIM_LUA });
    }
    this.#redis = redis as Redis & VoidCommands;
    this.#zset = `${keyPrefix}voids`;
    this.#attempts = `${keyPrefix}voids:attempts`;
  }

  async add(job: VoidJob, dueAt: number): Promise<void> {
    // NX: a job already queued keeps its schedule.
    await this.#redis.zadd(this.#zset, 'NX', dueAt, member(job));
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

  async done(job: VoidJob): Promise<void> {
    const key = member(job);
    await this.#redis.multi().zrem(this.#zset, key).hdel(this.#attempts, key).exec();
  }

  async retry(job: VoidJob, dueAt: number): Promise<void> {
    await this.#redis.zadd(this.#zset, 'XX', dueAt, member(job));
  }

  async count(): Promise<number> {
    return this.#redis.zcard(this.#zset);
  }
}
