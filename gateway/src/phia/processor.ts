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
  parseBalance,
  isErrorCode,
  PhiaError,
  type CurrencyTable,
  type ErrorCode,
  type MoneyKind,
} from '@phia/proto';
import type { FastifyBaseLogger } from 'fastify';
import type { LateAnswerWriter } from '../idempotency/late-answers.js';
import type { IdempotencyStore, StoredAnswer } from '../idempotency/store.js';
import { idempotencyKey } from '../idempotency/store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { VoidJob } from '../voids/backends.js';
import type { VoidQueue } from '../voids/queue.js';
import type { TransactionReply, WalletClient } from '../wallet-client/client.js';
import {
  errorAnswer,
  httpStatusOf,
  isFinalDecline,
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
  /** Writes answers the store could not take in time, and the ledger's outcome after a void. */
  lateAnswers?: LateAnswerWriter;
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
    return formatAmount(parseBalance(text, decimals), decimals);
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
  /**
   * Money requests this gateway is running, by key and fingerprint: a copy that cannot use the store
   * waits for the running one here instead of racing it to the wallet (where it could apply the
   * request the running one is about to answer with a timeout).
   */
  readonly #running = new Map<string, { fingerprint: string; answer: Promise<Answer> }>();

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
          {
            store: this.#o.store.name,
            reason: begin.reason,
            tx_id: body.tx_id,
            // Whether voids may be pending elsewhere, so the request is checked against the ledger first.
            voidsMayBePending: this.#o.voids.othersMayHavePendingVoids(),
          },
          'idempotency store unavailable, asking the wallet',
        );
        metrics?.storeBypass.inc({ operation: 'begin' });
        break;
      case 'acquired':
        break;
    }

    if (begin.kind === 'bypass' && begin.waitedForCopy === true) {
      // Another copy of this request held the key when the store stopped answering: it is still
      // running (maybe on another gateway) and its outcome is the request's. Sent to the wallet now,
      // with little of the deadline left, this copy would answer an error for a request the other
      // copy applies. The contract's answer for a copy still running at the end of the wait.
      metrics?.lockWaits.inc({ action: kind, outcome: 'in_progress' });
      if (begin.token !== undefined) this.#o.lateAnswers?.add({ key, token: begin.token });
      return errorToAnswer('REQUEST_IN_PROGRESS');
    }
    if (begin.kind === 'bypass') {
      const running = this.#running.get(key);
      if (running !== undefined) {
        if (running.fingerprint !== fingerprint) return errorToAnswer('IDEMPOTENCY_MISMATCH');
        metrics?.lockWaits.inc({ action: kind, outcome: 'replay' });
        const answer = await running.answer;
        return { ...answer, replayed: true };
      }
    }
    let settle: (answer: Answer) => void = () => {};
    const mine = {
      fingerprint,
      answer: new Promise<Answer>((resolve) => {
        settle = resolve;
      }),
    };
    if (!this.#running.has(key)) this.#running.set(key, mine);

    try {
      const request = { amount, betTxId, decimals, fingerprint };
      const first = await this.#answerWithoutStore(kind, body, request, begin.kind === 'bypass', ctx);
      const answer =
        begin.kind === 'bypass' && first.code !== 'ok' && needsVoid(first.code)
          ? ((await this.#storedAnswerAfterAll(key, fingerprint)) ?? first)
          : first;
      if (begin.kind === 'acquired') {
        if (NOT_THE_KEYS_ANSWER.has(answer.code)) {
          // The wallet holds other content under this key (or is still running another copy): the
          // refusal belongs to this request, not to the key. Cached, it would be replayed to the
          // request that owns the key.
          if (!(await this.#o.store.release(key, begin.token))) {
            this.#o.lateAnswers?.add({ key, token: begin.token });
          }
        } else {
          const stored = await this.#o.store.complete(key, begin.token, fingerprint, answer);
          if (!stored) {
            metrics?.storeBypass.inc({ operation: 'complete' });
            this.#o.lateAnswers?.add({ key, token: begin.token, fingerprint, answer });
          }
        }
      } else if (!NOT_THE_KEYS_ANSWER.has(answer.code)) {
        // Answered without the store: a later copy must find this answer there, not ask a wallet that
        // may be down by then, nor (after an error answer) one where it could still apply before its
        // void lands. Written only where no answer is. A decided answer is the ledger's outcome for
        // this content, so it also replaces an error a variant may have stored meanwhile; an error is
        // not (without the store this request may itself be a variant): the ledger's outcome replaces
        // it once the owner's void is confirmed (recordVoidOutcome).
        this.#o.lateAnswers?.add({
          key,
          ...(begin.token === undefined ? {} : { token: begin.token }),
          fingerprint,
          answer,
          // A 200 may be a replay of a row applied by another attempt that was answered with an error
          // (a late commit) and whose void is still on its way: the row's voided outcome replaces it
          // then. A decline is final.
          ...(isDecided(answer) ? { correct: true, final: answer.status !== 200 } : {}),
        });
      } else if (begin.token !== undefined) {
        // Nothing to store, but the timed-out begin may still take the lock when the store runs it:
        // left there, it would hold copies (or refuse them as other content) until it expires.
        this.#o.lateAnswers?.add({ key, token: begin.token });
      }
      settle(answer);
      return answer;
    } catch (error) {
      // Unexpected (the wallet call itself never throws): free the key for the next duplicate.
      settle(errorToAnswer('INTERNAL'));
      if (begin.kind === 'acquired') await this.#o.store.release(key, begin.token);
      throw error;
    } finally {
      if (this.#running.get(key) === mine) this.#running.delete(key);
    }
  }

  /**
   * After the wallet confirmed a void: the ledger now holds the key's final outcome, which becomes the
   * stored answer. Usually it is the error the gateway answered (tombstoned, reversed), written only
   * where the store has no answer yet; when another attempt's outcome stands (`kept`, `declined`),
   * that decided answer replaces an undecided 500/503/504 cached by a later copy.
   */
  async recordVoidOutcome(job: VoidJob, outcome: string): Promise<void> {
    const lateAnswers = this.#o.lateAnswers;
    if (lateAnswers === undefined || job.fingerprint === '' || outcome === 'not_matching') return;
    let record: TransactionReply;
    try {
      record = await this.#o.wallet.call('GetTransaction', { kind: job.kind, tx_id: job.tx_id });
    } catch {
      return; // the wallet still replays the outcome to a copy that reaches it
    }
    // Only the ledger's outcome for this very content: a row no request has claimed yet (a refusal's
    // tombstone) or one claimed by other content says nothing about the key's owner.
    if (record.fingerprint !== job.fingerprint) return;
    const answer = this.#ledgerAnswer(record);
    if (answer === undefined) return;
    lateAnswers.add({
      key: idempotencyKey(job.kind, job.tx_id),
      fingerprint: job.fingerprint,
      answer,
      correct: true,
      // An applied row can still be reversed by the void of the attempt that applied it.
      final: record.status !== 'applied',
    });
  }

  /** The answer the wallet gives a copy of a stored outcome, byte for byte as the first answer. */
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
    if ((record.status === 'declined' || record.status === 'voided') && isErrorCode(record.error_code)) {
      return errorToAnswer(record.error_code);
    }
    return undefined;
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

  /** The wallet's answer (or the pending void's), going the safe way when the store was bypassed. */
  async #answerWithoutStore(
    kind: MoneyKind,
    body: MoneyBodyT,
    request: { amount: string; betTxId: string | undefined; decimals: number; fingerprint: string },
    bypassed: boolean,
    ctx: RequestContext,
  ): Promise<Answer> {
    return (
      this.#answerOfPendingVoid(kind, body.tx_id, request.fingerprint) ??
      (bypassed && this.#o.voids.othersMayHavePendingVoids()
        ? await this.#settleWithoutStore(kind, body, request, ctx)
        : await this.#callWallet(kind, body, request, ctx))
    );
  }

  /**
   * A bypassed request about to be answered with an undecided error (the wallet could not answer
   * either): the store may have been only slow, not down, and hold the first answer. If it does,
   * that answer is the one to give (the void already queued for this attempt leaves it alone: this
   * attempt cannot have applied a request whose outcome was stored), or IDEMPOTENCY_MISMATCH when it
   * was stored for other content (the void, carrying this content's fingerprint, leaves that alone).
   */
  async #storedAnswerAfterAll(key: string, fingerprint: string): Promise<Answer | undefined> {
    let stored;
    try {
      stored = await this.#o.store.peek(key);
    } catch {
      return undefined;
    }
    if (stored === undefined) return undefined;
    // The key belongs to other content: this request is a reuse of its tx_id, whatever the wallet said.
    if (stored.fingerprint !== fingerprint) return errorToAnswer('IDEMPOTENCY_MISMATCH');
    this.#o.metrics?.replays.inc({ action: key.slice(0, key.indexOf(':')) });
    return { ...stored.answer, code: codeFromBody(stored.answer), replayed: true };
  }

  /**
   * A request that cannot read the idempotency store while voids may be pending elsewhere: it may be
   * a copy of a request another gateway answered with an error, whose void has not landed yet. So it
   * is never applied as new. If the ledger holds an outcome for the key, the wallet replays it (a
   * stored row never takes a second effect); if not, the request is tombstoned and answered 503, as
   * if the wallet were unavailable (it is, without its idempotency store).
   */
  async #settleWithoutStore(
    kind: MoneyKind,
    body: MoneyBodyT,
    request: { amount: string; betTxId: string | undefined; decimals: number; fingerprint: string },
    ctx: RequestContext,
  ): Promise<Answer> {
    const attemptId = randomUUID();
    const refused = (code: ErrorCode): Answer => {
      this.#o.metrics?.settledWithoutStore.inc({ action: kind, outcome: 'refused' });
      return errorToAnswer(code);
    };
    try {
      let record = await this.#ledgerRecord(kind, body.tx_id, ctx);
      // A refund's tombstone is no outcome of this request yet: the wallet would decline it
      // BET_REFUNDED, while its first copy may have been answered with an error.
      if (record === undefined || (record.status === 'tombstone' && unclaimedVoidCode(record) === undefined)) {
        const reply = await this.#o.wallet.void(
          {
            kind,
            tx_id: body.tx_id,
            error_code: 'WALLET_UNAVAILABLE',
            // A refusal: the tombstone names this content without claiming the key for it. This may
            // be a variant of a request answered elsewhere with an error, whose void (naming it) then
            // claims the key; until then other content meeting the tombstone is a mismatch, so a
            // variant sent next cannot take the key from this request.
            fingerprint: request.fingerprint,
            refusal: true,
            attempt_id: attemptId,
          },
          { requestId: ctx.requestId },
        );
        if (reply.outcome === 'tombstoned') return refused('WALLET_UNAVAILABLE');
        // Another copy got there first: its outcome, or the refusal it left, is the answer.
        record = await this.#ledgerRecord(kind, body.tx_id, ctx);
      }
      const left = unclaimedVoidCode(record);
      // A copy (or a variant) was refused here before: the void it left claims no content. Sent to
      // the wallet, this request would claim the key for its own content, and if it is a variant,
      // the first request's copies would then be refused as other content.
      if (left !== undefined) {
        // The tombstone names the content refused first: other content is a reuse of its tx_id.
        const first = record?.refused_fingerprint;
        if (first !== undefined && first !== '' && first !== request.fingerprint) {
          return errorToAnswer('IDEMPOTENCY_MISMATCH');
        }
        return refused(left);
      }
    } catch (error) {
      this.#logWalletError(error, ctx, kind);
      const code = codeOf(error);
      if (!needsVoid(code)) return errorToAnswer(code);
      // Refused like the rest of this path (503, whatever stopped the check), so that concurrent
      // copies on other gateways, refused the same way, agree; voided without a fingerprint, so that
      // the void's tombstone claims the key for no content either.
      await this.#queueVoid(kind, body.tx_id, 'WALLET_UNAVAILABLE', '', attemptId, ctx);
      return refused('WALLET_UNAVAILABLE');
    }
    this.#o.metrics?.settledWithoutStore.inc({ action: kind, outcome: 'replayed' });
    ctx.log.warn({ tx_id: body.tx_id, kind }, 'without the store: the ledger holds this key, replaying it');
    return this.#callWallet(kind, body, request, ctx);
  }

  /** The ledger's row for (kind, tx_id), if any. Throws a WalletError when it cannot tell. */
  async #ledgerRecord(kind: MoneyKind, txId: string, ctx: RequestContext): Promise<TransactionReply | undefined> {
    try {
      return await this.#o.wallet.call('GetTransaction', { kind, tx_id: txId }, { requestId: ctx.requestId });
    } catch (error) {
      if (error instanceof PhiaError && error.code === 'ACCOUNT_NOT_FOUND') return undefined;
      throw error;
    }
  }

  /** Rule 5: queued before the answer leaves, so the request can never apply afterwards. */
  async #queueVoid(
    kind: MoneyKind,
    txId: string,
    code: ErrorCode,
    fingerprint: string,
    attemptId: string,
    ctx: RequestContext,
  ): Promise<void> {
    const where = await this.#o.voids.enqueue({
      kind,
      tx_id: txId,
      error_code: code,
      fingerprint,
      attempt_id: attemptId,
    });
    this.#o.metrics?.voidsEnqueued.inc({ kind, backend: where });
    ctx.log.warn({ kind, tx_id: txId, code, queue: where }, 'void queued for an undecided error answer');
  }

  /** The one wallet call; every failure becomes an error answer, undecided ones voided first. */
  async #callWallet(
    kind: MoneyKind,
    body: MoneyBodyT,
    request: { amount: string; betTxId: string | undefined; decimals: number; fingerprint: string },
    ctx: RequestContext,
  ): Promise<Answer> {
    const { amount, betTxId, decimals, fingerprint } = request;
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
      if (needsVoid(code)) await this.#queueVoid(kind, body.tx_id, code, fingerprint, attemptId, ctx);
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

/** An answer the ledger decided (200 or its decline): final, the same for every copy. */
function isDecided(answer: Answer): boolean {
  if (answer.status === 200) return true;
  return answer.code !== 'ok' && isFinalDecline(answer.code);
}

/**
 * The error a void recorded on a row no request has claimed (a tombstone left by a refusal without the
 * store, or a refund's tombstone a void has answered for): what every copy is refused with until a
 * request that can use the store claims it.
 */
function unclaimedVoidCode(record: TransactionReply | undefined): ErrorCode | undefined {
  if (record === undefined || record.fingerprint !== '') return undefined;
  if (record.status !== 'voided' && record.status !== 'tombstone') return undefined;
  return isErrorCode(record.error_code) ? record.error_code : undefined;
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
