/**
 * What the gateway does with one validated PHIA request: check currency and amount, take the
 * idempotency key (or replay / refuse), make the one wallet call, void what must never apply, store
 * and return the final answer. Answers are returned as exact body text, so that a replay is the
 * same bytes as the first answer.
 */
import { randomUUID } from 'node:crypto';
import {
  currencyDecimals,
  formatAmount,
  moneyFingerprint,
  normalizeAmount,
  parseAmount,
  PhiaError,
  type CurrencyTable,
  type ErrorCode,
  type MoneyKind,
} from '@phia/proto';
import type { FastifyBaseLogger } from 'fastify';
import type { IdempotencyStore, StoredAnswer } from '../idempotency/store.js';
import { idempotencyKey } from '../idempotency/store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { VoidQueue } from '../voids/queue.js';
import type { WalletClient } from '../wallet-client/client.js';
import {
  errorAnswer,
  httpStatusOf,
  needsVoid,
  WALLET_METHOD,
  type BalanceAnswerT,
  type BalanceBodyT,
  type MoneyAnswerT,
  type MoneyBodyT,
} from './contract.js';

export interface Answer extends StoredAnswer {
  /** `ok` or the contract code answered. */
  code: ErrorCode | 'ok';
  /** Sent from the idempotency store (a duplicate). */
  replayed: boolean;
}

export interface ProcessorOptions {
  wallet: WalletClient;
  store: IdempotencyStore;
  voids: VoidQueue;
  currencies: CurrencyTable;
  /** The wallet deadline: duplicates wait this long plus a margin for the first's answer. */
  deadlineMs: number;
  metrics?: GatewayMetrics;
}

export interface RequestContext {
  requestId: string;
  log: FastifyBaseLogger;
  /** Epoch ms the request arrived: the wallet call's deadline counts from it. */
  arrivedAt?: number;
}

function okAnswer(body: BalanceAnswerT | MoneyAnswerT): Answer {
  // Fixed key order: the text is what gets cached and replayed.
  const text =
    'tx_id' in body
      ? JSON.stringify({ balance: body.balance, currency: body.currency, tx_id: body.tx_id })
      : JSON.stringify({ balance: body.balance, currency: body.currency });
  return { status: 200, body: text, code: 'ok', replayed: false };
}

export function errorToAnswer(code: ErrorCode): Answer {
  return { status: httpStatusOf(code), body: JSON.stringify(errorAnswer(code)), code, replayed: false };
}

/** The wallet's balance, checked and given exactly the currency's decimals. */
function walletBalance(text: unknown, decimals: number): string {
  if (typeof text !== 'string') throw new PhiaError('INTERNAL', 'wallet reply without balance');
  try {
    return formatAmount(parseAmount(text, decimals), decimals);
  } catch {
    throw new PhiaError('INTERNAL', `wallet reply with malformed balance "${text}"`);
  }
}

function codeOf(error: unknown): ErrorCode {
  return error instanceof PhiaError ? error.code : 'INTERNAL';
}

/** Wallet answers that belong to this request only, never cached as the key's answer. */
const NOT_THE_KEYS_ANSWER: ReadonlySet<string> = new Set(['IDEMPOTENCY_MISMATCH', 'REQUEST_IN_PROGRESS']);

/** Optional text fields: absent, null and "" all mean "not given". */
function optional(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value;
}

export class PhiaProcessor {
  readonly #o: ProcessorOptions;
  readonly #waitMs: number;
  readonly #lockTtlMs: number;

  constructor(options: ProcessorOptions) {
    this.#o = options;
    this.#waitMs = options.deadlineMs + 500;
    // Outlives the owner's work (one wallet call, a void enqueue, the store write) with a margin; if the
    // owner dies, duplicates take over soon after.
    this.#lockTtlMs = options.deadlineMs + 3000;
  }

  async balance(body: BalanceBodyT, ctx: RequestContext): Promise<Answer> {
    const decimals = currencyDecimals(this.#o.currencies, body.currency);
    try {
      const sessionId = optional(body.session_id);
      const reply = await this.#o.wallet.getBalance(
        {
          user_id: body.user_id,
          currency: body.currency,
          ...(sessionId === undefined ? {} : { session_id: sessionId }),
        },
        { requestId: ctx.requestId, arrivedAt: ctx.arrivedAt },
      );
      return okAnswer({ balance: walletBalance(reply.balance, decimals), currency: body.currency });
    } catch (error) {
      this.#logWalletError(error, ctx, 'balance');
      return errorToAnswer(codeOf(error));
    }
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
    const key = idempotencyKey(kind, body.tx_id);
    const metrics = this.#o.metrics;

    const begin = await this.#o.store.begin(key, fingerprint, { waitMs: this.#waitMs, lockTtlMs: this.#lockTtlMs });
    switch (begin.kind) {
      case 'replay':
        metrics?.replays.inc({ action: kind });
        if (begin.waited) metrics?.lockWaits.inc({ action: kind, outcome: 'replay' });
        return { ...begin.answer, code: codeFromBody(begin.answer), replayed: true };
      case 'mismatch':
        return errorToAnswer('IDEMPOTENCY_MISMATCH');
      case 'in_progress':
        metrics?.lockWaits.inc({ action: kind, outcome: 'in_progress' });
        return errorToAnswer('REQUEST_IN_PROGRESS');
      case 'bypass':
        ctx.log.warn(
          { store: this.#o.store.name, reason: begin.reason },
          'idempotency store unavailable, asking the wallet',
        );
        metrics?.storeBypass.inc({ operation: 'begin' });
        break;
      case 'acquired':
        break;
    }

    try {
      const answer =
        this.#answerOfPendingVoid(kind, body.tx_id, fingerprint) ??
        (await this.#callWallet(kind, body, { amount, betTxId, decimals, fingerprint }, ctx));
      if (begin.kind === 'acquired') {
        if (NOT_THE_KEYS_ANSWER.has(answer.code)) {
          // The wallet holds other content under this key (or is still running another copy): the
          // refusal belongs to this request, not to the key. Cached, it would be replayed to the
          // request that owns the key.
          await this.#o.store.release(key, begin.token);
        } else {
          const stored = await this.#o.store.complete(key, begin.token, fingerprint, answer);
          if (!stored) metrics?.storeBypass.inc({ operation: 'complete' });
        }
      }
      return answer;
    } catch (error) {
      // Unexpected (the wallet call itself never throws): free the key for the next duplicate.
      if (begin.kind === 'acquired') await this.#o.store.release(key, begin.token);
      throw error;
    }
  }

  /**
   * A void this gateway queued for this key and the wallet has not confirmed yet means the first copy
   * was answered with that error: a duplicate gets the same answer (the cache may be unreachable) and
   * never reaches the wallet, where it could apply before the void lands.
   */
  #answerOfPendingVoid(kind: MoneyKind, txId: string, fingerprint: string): Answer | undefined {
    const pending = this.#o.voids.pendingFor(kind, txId);
    if (pending === undefined) return undefined;
    if (pending.fingerprint !== '' && pending.fingerprint !== fingerprint) return errorToAnswer('IDEMPOTENCY_MISMATCH');
    this.#o.metrics?.replays.inc({ action: kind });
    return { ...errorToAnswer(pending.error_code), replayed: true };
  }

  /** The one wallet call; every failure becomes an error answer, undecided ones voided first. */
  async #callWallet(
    kind: MoneyKind,
    body: MoneyBodyT,
    request: { amount: string; betTxId: string | undefined; decimals: number; fingerprint: string },
    ctx: RequestContext,
  ): Promise<Answer> {
    const { amount, betTxId, decimals, fingerprint } = request;
    const metrics = this.#o.metrics;
    // Names this attempt in the ledger, so its void (if any) undoes only what this attempt applied.
    const attemptId = randomUUID();
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
          attempt_id: attemptId,
        },
        { requestId: ctx.requestId, arrivedAt: ctx.arrivedAt },
      );
      return okAnswer({
        balance: walletBalance(reply.balance, decimals),
        currency: body.currency,
        tx_id: body.tx_id,
      });
    } catch (error) {
      const code = codeOf(error);
      this.#logWalletError(error, ctx, kind);
      if (needsVoid(code)) {
        // Rule 5: queued before the answer leaves, so the request can never apply afterwards.
        const where = await this.#o.voids.enqueue({
          kind,
          tx_id: body.tx_id,
          error_code: code,
          fingerprint,
          attempt_id: attemptId,
        });
        metrics?.voidsEnqueued.inc({ kind, backend: where });
        ctx.log.warn({ kind, tx_id: body.tx_id, code, queue: where }, 'void queued for an undecided error answer');
      }
      return errorToAnswer(code);
    }
  }

  #logWalletError(error: unknown, ctx: RequestContext, action: string): void {
    const code = codeOf(error);
    const detail = error instanceof PhiaError ? error.detail : String(error);
    const level = code === 'INTERNAL' || code === 'WALLET_TIMEOUT' || code === 'WALLET_UNAVAILABLE' ? 'warn' : 'debug';
    ctx.log[level]({ action, code, detail }, 'wallet call failed');
  }
}

/** The code of a stored answer (for logs and metrics of replays). */
function codeFromBody(answer: StoredAnswer): ErrorCode | 'ok' {
  if (answer.status === 200) return 'ok';
  try {
    return (JSON.parse(answer.body) as { code: ErrorCode }).code;
  } catch {
    return 'INTERNAL';
  }
}
