/**
 * What the gateway does with one validated PHIA request: check currency and amount, then follow the
 * table of docs/idempotency.md for its key (each branch names its cell): take the key or replay its
 * answer, make the one wallet call, settle an undecided failure with the ledger (S), store the
 * decided answer or queue the void. Answers are exact body text, so a replay is the same bytes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  answerClass,
  currencyDecimals,
  isErrorCode,
  moneyFingerprint,
  normalizeAmount,
  type CurrencyTable,
  type ErrorCode,
  type MoneyKind,
} from '@phia/proto';
import type { FastifyBaseLogger } from 'fastify';
import { newAttemptId } from './attempt-id.js';
import { idempotencyKey, type AnswerOf, type IdempotencyStore } from '../idempotency/store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { VoidQueue } from '../voids/queue.js';
import type { TransactionReply, VoidReply, WalletClient } from '../wallet-client/client.js';
import { balanceAnswer } from './balance.js';
import {
  codeFromBody,
  codeOf,
  logWalletError,
  optional,
  errorToAnswer,
  okAnswer,
  walletBalance,
  WALLET_METHOD,
  type Answer,
  type BalanceBodyT,
  type MoneyBodyT,
} from './contract.js';

export type { Answer } from './contract.js';

/** S: an undecided failure is settled with the ledger until arrival + this (PHIA gives up at 6 s). */
export const SETTLE_BUDGET_MS = 5250;
/** R4: a copy waits for the running one's answer until its own arrival + this. */
export const COPY_WAIT_MS = 5500;
/** C: a decided answer is stored before it leaves, tried until arrival + this while Redis fails. */
export const STORE_BUDGET_MS = 4500;
/** A lock outlives PHIA's 6 s budget, so it never expires under a living owner. */
export const LOCK_TTL_MS = 8000;
/** S, C: the pause between two tries while the wallet (S) or Redis (C) is out of reach. */
const RETRY_MS = 100;

export interface ProcessorOptions {
  wallet: WalletClient;
  store: IdempotencyStore;
  voids: VoidQueue;
  currencies: CurrencyTable;
  metrics?: GatewayMetrics;
}

export interface RequestContext {
  requestId: string;
  log: FastifyBaseLogger;
  /** Epoch ms the request arrived: the wallet call's deadline and the settle budget count from it. */
  arrivedAt?: number;
}

interface MoneyRequest {
  kind: MoneyKind;
  body: MoneyBodyT;
  amount: string;
  betTxId: string | undefined;
  decimals: number;
  fingerprint: string;
  arrivedAt: number;
}

export class PhiaProcessor {
  readonly #o: ProcessorOptions;

  constructor(options: ProcessorOptions) {
    this.#o = options;
  }

  /** Not a money request: no key, no void; one wallet read. */
  balance(body: BalanceBodyT, ctx: RequestContext): Promise<Answer> {
    return balanceAnswer(this.#o, body, ctx);
  }

  async money(kind: MoneyKind, body: MoneyBodyT, ctx: RequestContext): Promise<Answer> {
    // Refused before Redis or the wallet is touched (throws INVALID_REQUEST).
    const decimals = currencyDecimals(this.#o.currencies, body.currency);
    const amount = normalizeAmount(body.amount, decimals);
    const betTxId = kind === 'bet' ? undefined : optional(body.bet_tx_id);
    const fingerprint = moneyFingerprint(kind, {
      user_id: body.user_id,
      currency: body.currency,
      amount,
      round_id: body.round_id,
      game_session_id: body.game_session_id,
      bet_tx_id: betTxId ?? '',
    });
    const arrivedAt = ctx.arrivedAt ?? Date.now();
    const request: MoneyRequest = { kind, body, amount, betTxId, decimals, fingerprint, arrivedAt };
    const key = idempotencyKey(kind, body.tx_id);
    const metrics = this.#o.metrics;

    const begin = await this.#o.store.begin(key, fingerprint, {
      waitUntil: arrivedAt + COPY_WAIT_MS,
      lockTtlMs: LOCK_TTL_MS,
    });
    switch (begin.kind) {
      case 'replay': // R6, R7
        metrics?.replays.inc({ action: kind });
        if (begin.waited) metrics?.lockWaits.inc({ action: kind, outcome: 'replay' });
        return { ...begin.answer, code: codeFromBody(begin.answer), replayed: true };
      case 'mismatch': // R8
        return errorToAnswer('IDEMPOTENCY_MISMATCH');
      case 'in_progress': // R4, R5: the wait ended
        metrics?.lockWaits.inc({ action: kind, outcome: 'in_progress' });
        return errorToAnswer('REQUEST_IN_PROGRESS');
      case 'unreachable': // N1-N5
        metrics?.storeBypass.inc({ operation: 'begin' });
        ctx.log.warn(
          { reason: begin.reason, tx_id: body.tx_id },
          'idempotency store unreachable: settling with the ledger',
        );
        return this.#withoutStore(request, key, begin.token, ctx);
      case 'acquired': // R1-R3, R9
        break;
    }

    let answer: Answer;
    let then: 'release' | 'keep' | 'stored';
    try {
      [answer, then] = await this.#withKey(request, key, begin.token, ctx);
    } catch (error) {
      // Unexpected (the wallet calls never throw): free the key for the next copy.
      await this.#o.store.release(key, begin.token);
      throw error;
    }
    if (then === 'release') await this.#o.store.release(key, begin.token);
    return answer;
  }

  /** The key is ours: the wallet call, C for its decided answer, S when undecided, what becomes of the key. */
  async #withKey(
    request: MoneyRequest,
    key: string,
    token: string,
    ctx: RequestContext,
  ): Promise<[Answer, 'release' | 'keep' | 'stored']> {
    const attemptId = newAttemptId();
    const first = await this.#callWallet(request, attemptId, ctx);
    const firstClass = first.code === 'ok' ? 'decided' : answerClass(first.code);
    if (firstClass === 'request') return [first, 'release']; // R9: the answer of this request only
    let code = first.code as ErrorCode;
    if (firstClass === 'decided') {
      // R1-R3, C: the answer leaves only once Redis holds it; one it cannot hold is settled as undecided.
      if (await this.#storeOwn(key, token, request, first, attemptId)) return [first, 'stored'];
      code = 'WALLET_UNAVAILABLE';
    }
    const settled = await this.#settle(request, code, attemptId, true, ctx); // S
    if (settled?.code === 'IDEMPOTENCY_MISMATCH') return [settled, 'release'];
    if (settled !== undefined) {
      // A settled answer Redis missed waits in memory (O3); it replaces this attempt's own, should that
      // one's timed-out tries run late (C).
      await this.#complete(key, token, request, settled, { attempt: attemptId, own: false });
      return [settled, 'stored'];
    }
    const where = await this.#queueVoid(request, code, attemptId, ctx); // S → O1
    // O3: the lock holds copies off until the void moves to Redis with its answer (the in-process
    // store keeps that answer already).
    return [errorToAnswer(code), where === 'memory' && this.#o.store.name !== 'memory' ? 'keep' : 'release'];
  }

  /** C: the wallet's own decided answer, tried while Redis fails it within the budget; false if never stored. */
  async #storeOwn(key: string, token: string, request: MoneyRequest, answer: Answer, attempt: string) {
    for (;;) {
      if ((await this.#complete(key, token, request, answer, { attempt, own: true })) !== 'missed') return true;
      const left = request.arrivedAt + STORE_BUDGET_MS - Date.now();
      if (left <= 0) return false;
      await sleep(Math.min(RETRY_MS, left));
    }
  }

  /** Stores a decided answer (C, O3). */
  async #complete(key: string, token: string, request: MoneyRequest, answer: Answer, of: AnswerOf) {
    const done = await this.#o.store.complete(key, token, request.fingerprint, answer, of);
    if (done === 'missed') this.#o.metrics?.storeBypass.inc({ operation: 'complete' });
    return done;
  }

  /**
   * N1-N5: without the store no money call is made (another gateway may hold an undecided error for
   * this key in an outbox this one cannot read). The ledger settles the request: a Void naming this
   * content and an attempt that applied nothing tombstones it if unseen.
   */
  async #withoutStore(request: MoneyRequest, key: string, token: string, ctx: RequestContext): Promise<Answer> {
    const attemptId = newAttemptId();
    const settled = await this.#settle(request, 'WALLET_UNAVAILABLE', attemptId, false, ctx);
    this.#o.metrics?.settledWithoutStore.inc({
      action: request.kind,
      outcome: settled === undefined ? 'unsettled' : settled.code,
    });
    if (settled !== undefined) {
      // N1, N2: the ledger's answer, written to Redis once it answers (O3), with the lock a late
      // begin may have taken; N3, N4 are this copy's only.
      if (settled.code !== 'ok' && answerClass(settled.code as ErrorCode) === 'request') {
        await this.#o.store.release(key, token);
      } else await this.#o.store.complete(key, token, request.fingerprint, settled);
      return settled;
    }
    // N5 → O3: nothing can tell the key's state (it may be a copy of a 200): this request's own
    // answer, and a void so that it never applies if unseen.
    await this.#queueVoid(request, 'WALLET_UNAVAILABLE', attemptId, ctx, true);
    return errorToAnswer('REQUEST_IN_PROGRESS');
  }

  /**
   * S: make the ledger decide within the budget: Void (the request can never apply after it), and
   * answer what the row holds: the error the void's reply names, or, for another attempt's 200, the
   * row read with GetTransaction. Undefined when the wallet stayed out of reach.
   */
  async #settle(
    request: MoneyRequest,
    code: ErrorCode,
    attemptId: string,
    withStore: boolean,
    ctx: RequestContext,
  ): Promise<Answer | undefined> {
    const { kind, body, fingerprint } = request;
    const until = request.arrivedAt + SETTLE_BUDGET_MS;
    const job = { kind, tx_id: body.tx_id, error_code: code, fingerprint, attempt_id: attemptId };
    // C: with the key taken in the store, another attempt's application after the horizon is undone.
    const horizon = withStore ? this.#o.store.unansweredAfter(request.arrivedAt) : 0;
    const deadline = () => Math.min(this.#o.wallet.deadlineMs, until - Date.now());
    let voided: VoidReply | undefined;
    while (until - Date.now() > 0) {
      try {
        voided ??= await this.#o.wallet.void(horizon > 0 ? { ...job, unanswered_after_ms: horizon } : job, {
          requestId: ctx.requestId,
          deadlineMs: deadline(),
        });
        const { outcome } = voided;
        if (outcome === 'not_matching') return errorToAnswer('IDEMPOTENCY_MISMATCH'); // N4
        // N3: another attempt's outcome, final only if no void of that attempt waits in an outbox
        // this gateway cannot read.
        if (!withStore && (outcome === 'kept' || outcome === 'declined')) {
          return errorToAnswer('REQUEST_IN_PROGRESS');
        }
        // S: the void's reply names the error the row answers; only another attempt's 200 is read.
        if (isErrorCode(voided.error_code)) return errorToAnswer(voided.error_code);
        const record = await this.#o.wallet.call(
          'GetTransaction',
          { kind, tx_id: body.tx_id },
          { requestId: ctx.requestId, deadlineMs: deadline() },
        );
        const answer = this.#ledgerAnswer(record);
        if (answer !== undefined) return answer; // S, N1, N2
        ctx.log.error({ kind, tx_id: body.tx_id, status: record.status }, 'ledger row without an answer');
        return undefined;
      } catch (error) {
        logWalletError(error, ctx, 'settle');
        // A void refused with a decline of its own (a spent credit) waits in the outbox (O2).
        if (answerClass(codeOf(error)) !== 'undecided') return undefined;
        await sleep(Math.max(0, Math.min(RETRY_MS, until - Date.now())));
      }
    }
    return undefined;
  }

  /** The answer the ledger's row gives, byte for byte the one a copy gets from the wallet. */
  #ledgerAnswer(record: TransactionReply): Answer | undefined {
    if (record.status === 'applied') {
      try {
        const decimals = currencyDecimals(this.#o.currencies, record.currency);
        return okAnswer({
          balance: walletBalance(record.balance, decimals),
          currency: record.currency,
          tx_id: record.tx_id,
        });
      } catch {
        return undefined;
      }
    }
    return isErrorCode(record.error_code) ? errorToAnswer(record.error_code) : undefined;
  }

  /** O1 (O3 when Redis fails): queued with its answer before the answer leaves (rule 5). */
  async #queueVoid(
    request: MoneyRequest,
    code: ErrorCode,
    attemptId: string,
    ctx: RequestContext,
    refusal = false,
  ): Promise<'durable' | 'memory'> {
    const { kind, body, fingerprint } = request;
    const job = { kind, tx_id: body.tx_id, error_code: code, fingerprint, attempt_id: attemptId };
    const horizon = this.#o.store.unansweredAfter(request.arrivedAt);
    const where = await this.#o.voids.enqueue(
      // N5: a refusal; S: the horizon of a key taken in the store (C)
      refusal ? { ...job, refusal: true } : horizon > 0 ? { ...job, unanswered_after_ms: horizon } : job,
    );
    this.#o.metrics?.voidsEnqueued.inc({ kind, backend: where });
    ctx.log.warn({ kind, tx_id: body.tx_id, code, queue: where }, 'not settled in time: void queued');
    return where;
  }

  /** The one money call; every failure becomes an error answer. */
  async #callWallet(request: MoneyRequest, attemptId: string, ctx: RequestContext): Promise<Answer> {
    const { kind, body, amount, betTxId, decimals } = request;
    try {
      const sessionId = optional(body.session_id);
      const gameId = optional(body.game_id);
      const reply = await this.#o.wallet.money(
        WALLET_METHOD[kind] as 'Bet' | 'Win' | 'Refund',
        {
          tx_id: body.tx_id,
          user_id: body.user_id,
          currency: body.currency,
          amount,
          round_id: body.round_id,
          game_session_id: body.game_session_id,
          ...(sessionId === undefined ? {} : { session_id: sessionId }),
          ...(gameId === undefined ? {} : { game_id: gameId }),
          ...(betTxId === undefined ? {} : { bet_tx_id: betTxId }),
          // Names this attempt in the ledger, so its void undoes only what this attempt applied.
          attempt_id: attemptId,
        },
        { requestId: ctx.requestId, arrivedAt: request.arrivedAt },
      );
      return okAnswer({ balance: walletBalance(reply.balance, decimals), currency: body.currency, tx_id: body.tx_id });
    } catch (error) {
      logWalletError(error, ctx, kind);
      return errorToAnswer(codeOf(error));
    }
  }
}
