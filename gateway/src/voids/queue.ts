/**
 * Contract rule 5, "an error answer is final": an undecided error the gateway could not settle with
 * the ledger in time (docs/idempotency.md, S) must never take effect later. The gateway enqueues a
 * wallet `Void {kind, tx_id, error_code, fingerprint, attempt_id}` BEFORE it answers (O1), then a
 * drain loop delivers it, retrying with backoff until the wallet confirms. The queue is durable in
 * Redis when configured; when Redis is absent or fails at enqueue time, the job waits in process
 * memory (O3) and moves to Redis once it answers.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { answerClass, type ErrorCode } from '@phia/proto';
import { WalletError } from '../wallet-client/client.js';
import type { AnswerSink, VoidBackend, VoidJob } from './backends.js';
import { member, MemoryVoidBackend } from './backends.js';

/**
 * The code of a void the wallet refused with a final decline of its own (INSUFFICIENT_FUNDS after a
 * late win was spent, INVALID_REQUEST for a row it cannot read): retrying cannot apply it. Timeouts,
 * an unreachable wallet and internal faults are transient: undefined.
 */
export function walletRefusedVoid(error: unknown): ErrorCode | undefined {
  return error instanceof WalletError && error.decidedByWallet && answerClass(error.code) === 'decided'
    ? error.code
    : undefined;
}

export interface VoidQueueOptions {
  /** Delivers one void to the wallet; resolves when the wallet confirmed it. */
  send: (job: VoidJob) => Promise<unknown>;
  /** Durable backend (Redis); when absent, the in-process one is the only one. */
  durable?: VoidBackend;
  /** Without Redis: the in-process store, where the in-process backend keeps its voids' answers. */
  answers?: AnswerSink;
  /** First retry delay; doubles per attempt up to maxDelayMs (with ±20% jitter). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How often the loop looks for due jobs when nothing kicked it. */
  pollIntervalMs?: number;
  /** How long a claimed job stays hidden from other gateways while being delivered. */
  leaseMs?: number;
  batchSize?: number;
  onDelivered?: (job: VoidJob, attempts: number, result: unknown) => void;
  onFailed?: (job: VoidJob, attempts: number, error: unknown) => void;
  /**
   * A void the wallet refused with a decline of its own (walletRefusedVoid): reported once per void.
   * It is still retried like any other: the state behind the refusal may change (funds come back),
   * and dropping it would hide money moved for an error answer.
   */
  onUnappliable?: (job: VoidJob, attempts: number, code: ErrorCode) => void;
  onBackendError?: (backend: string, error: unknown) => void;
}

const MAX_REMEMBERED = 100_000;

/** O1: the void's error stays the key's answer when the ledger's row, this content's, answers it too. */
function keepsAnswer(job: VoidJob, result: unknown): boolean {
  const { outcome, error_code } = (result ?? {}) as { outcome?: unknown; error_code?: unknown };
  return outcome !== 'not_matching' && error_code === job.error_code;
}

type Tuning = 'baseDelayMs' | 'maxDelayMs' | 'pollIntervalMs' | 'leaseMs' | 'batchSize';

export class VoidQueue {
  readonly #durable: VoidBackend | undefined;
  readonly #memory: MemoryVoidBackend;
  readonly #options: VoidQueueOptions & Required<Pick<VoidQueueOptions, Tuning>>;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #kicked = false;
  #lastCount = 0;
  /** Voids reported to onUnappliable, so each is reported once (bounded). */
  readonly #unappliable = new Set<string>();

  constructor(options: VoidQueueOptions) {
    // maxDelayMs short: a void waits mostly for a wallet that is down; once it is back, the void
    // should land before the player's next requests can spend what it undoes (docs/idempotency.md, E).
    this.#options = {
      baseDelayMs: 200,
      maxDelayMs: 1000,
      pollIntervalMs: 500,
      leaseMs: 10_000,
      batchSize: 50,
      ...options,
    };
    this.#durable = options.durable;
    this.#memory = new MemoryVoidBackend(options.answers);
  }

  /**
   * Stores the job with its answer (Redis first, O1; in-process if that fails, O3) and wakes the loop.
   * Resolves once the job is stored, so the caller can answer knowing the void will be delivered.
   */
  async enqueue(job: VoidJob): Promise<'durable' | 'memory'> {
    const now = Date.now();
    let where: 'durable' | 'memory' = 'memory';
    if (this.#durable !== undefined) {
      try {
        await this.#durable.add(job, now);
        where = 'durable';
      } catch (error) {
        this.#options.onBackendError?.(this.#durable.name, error);
      }
    }
    if (where === 'memory') await this.#memory.add(job, now);
    this.#lastCount++;
    this.kick();
    return where;
  }

  /** O3: voids kept in memory while Redis failed move there (with their answers) once it answers. */
  async #moveToDurable(): Promise<void> {
    if (this.#durable === undefined) return;
    for (const job of this.#memory.jobs()) {
      await this.#durable.add(job, Date.now());
      await this.#memory.done(job, 'keep');
    }
  }

  #reportUnappliable(job: VoidJob, attempts: number, code: ErrorCode): void {
    const key = member(job);
    if (this.#unappliable.has(key)) return;
    if (this.#unappliable.size >= MAX_REMEMBERED) this.#unappliable.clear();
    this.#unappliable.add(key);
    this.#options.onUnappliable?.(job, attempts, code);
  }

  /** Wakes the drain loop now. */
  kick(): void {
    this.#kicked = true;
    this.#wake?.();
  }

  /** Jobs waiting for the wallet's confirmation (durable and in-process); the last known count if Redis fails. */
  async pendingCount(): Promise<number> {
    let count = await this.#memory.count();
    if (this.#durable !== undefined) {
      try {
        count += await this.#durable.count();
      } catch (error) {
        this.#options.onBackendError?.(this.#durable.name, error);
        return Math.max(this.#lastCount, count);
      }
    }
    this.#lastCount = count;
    return count;
  }

  /** The delay before attempt `attempts + 1`. */
  backoff(attempts: number): number {
    const raw = Math.min(this.#options.baseDelayMs * 2 ** Math.max(attempts - 1, 0), this.#options.maxDelayMs);
    return Math.round(raw * (0.8 + Math.random() * 0.4));
  }

  /** One pass over both backends: delivers every due job once. Returns how many were confirmed. */
  async drainOnce(): Promise<number> {
    let delivered = 0;
    try {
      await this.#moveToDurable();
    } catch (error) {
      this.#options.onBackendError?.('redis', error);
    }
    const backends = this.#durable === undefined ? [this.#memory] : [this.#durable, this.#memory];
    for (const backend of backends) {
      const backendError = (error: unknown) => this.#options.onBackendError?.(backend.name, error);
      let claimed;
      try {
        claimed = await backend.claimDue(Date.now(), this.#options.batchSize, this.#options.leaseMs);
      } catch (error) {
        backendError(error);
        continue;
      }
      await Promise.all(
        claimed.map(async ({ job, attempts }) => {
          let result: unknown;
          try {
            result = await this.#options.send(job);
          } catch (error) {
            this.#options.onFailed?.(job, attempts, error);
            const refusal = walletRefusedVoid(error);
            if (refusal !== undefined) this.#reportUnappliable(job, attempts, refusal);
            // On a backend failure the lease expires by itself; the job comes back then.
            await backend.retry(job, Date.now() + this.backoff(attempts)).catch(backendError);
            return;
          }
          delivered++;
          this.#unappliable.delete(member(job));
          this.#options.onDelivered?.(job, attempts, result);
          // O1: a row answering another error (decided before: an earlier void, another attempt) answers
          // copies itself. Not removed: sent again.
          await backend.done(job, keepsAnswer(job, result) ? 'keep' : 'drop').catch(backendError);
        }),
      );
    }
    return delivered;
  }

  /** Starts the drain loop (idempotent). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      this.#kicked = false;
      let delivered = 0;
      try {
        delivered = await this.drainOnce();
        await this.pendingCount();
      } catch (error) {
        this.#options.onBackendError?.('queue', error);
      }
      if (!this.#running) break;
      // A full batch delivered: more are likely due (a backlog after an outage or an overload), so the
      // next pass starts at once instead of after the poll interval (which capped delivery at about
      // batchSize per interval).
      if (this.#kicked || delivered >= this.#options.batchSize) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#options.pollIntervalMs);
        timer.unref();
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }

  /**
   * Stops the loop after the pass in progress, then makes one last delivery pass bounded by
   * `drainTimeoutMs` (what is left in Redis is delivered by the next gateway to start; what is left
   * in process memory is logged by the caller as lost).
   */
  async close(drainTimeoutMs = 2000): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    if (drainTimeoutMs <= 0) return;
    await Promise.race([
      this.drainOnce().catch((error: unknown) => this.#options.onBackendError?.('queue', error)),
      sleep(drainTimeoutMs, undefined, { ref: false }),
    ]);
  }
}
