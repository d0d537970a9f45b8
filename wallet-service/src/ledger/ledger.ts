/**
 * The ledger: every money rule of the contract (section 6) as SQL transactions.
 *
 * Each money request is one database transaction that locks the player's account row first (so all
 * requests of one account are serialized, in one lock order), then looks up its (kind, tx_id) row,
 * decides, writes the outcome row and the balanced entries, and commits before anyone is answered.
 * Declines are stored as well as successes, so a duplicate always gets the first answer back, also
 * after a restart.
 */
import { randomBytes } from 'node:crypto';
import {
  currencyDecimals,
  fitsBalance,
  formatAmount,
  isErrorCode,
  moneyFingerprint,
  parseAmount,
  parseBalance,
  PhiaError,
  type CurrencyTable,
  type ErrorCode,
  type LedgerKind,
  type MoneyKind,
} from '@phia/proto';
import { isConnectionFailure, isPoolTimeout, sqlState, type Database, type Queryable } from '../db/database.js';
import { DatabaseUnavailableError, DeadlineExceededError, RetryTransaction } from './errors.js';

export interface CallContext {
  /** Absolute deadline (epoch ms) of the caller; undefined: no deadline. */
  deadline?: number | undefined;
}

export interface LedgerHooks {
  /** Runs right before COMMIT (tests inject delays here to prove the deadline check). */
  beforeCommit?: (operation: string) => Promise<void>;
}

export interface LedgerOptions {
  currencies: CurrencyTable;
  /** Stop before COMMIT when less than this is left of the caller's deadline. */
  commitMarginMs?: number;
  /** statement_timeout for calls that carry no deadline. */
  defaultStatementTimeoutMs?: number;
  defaultSessionTtlSeconds?: number;
  maxSessionTtlSeconds?: number;
  hooks?: LedgerHooks;
}

export interface MoneyInput {
  tx_id: string;
  user_id: string;
  currency: string;
  amount: string;
  round_id?: string;
  game_session_id?: string;
  session_id?: string;
  game_id?: string;
  bet_tx_id?: string;
  /** Names this attempt (the caller's request id); stored with the outcome it decides. */
  attempt_id?: string;
}

export interface MoneyAnswer {
  balance: string;
  currency: string;
  tx_id: string;
}

export type VoidOutcome =
  'reversed' | 'tombstoned' | 'already_voided' | 'declined' | 'decline_replaced' | 'not_matching' | 'kept';

export interface VoidAnswer {
  kind: LedgerKind;
  tx_id: string;
  outcome: VoidOutcome;
  balance: string;
  currency: string;
}

export interface TransactionRecord {
  kind: string;
  tx_id: string;
  status: 'applied' | 'declined' | 'tombstone' | 'voided';
  error_code: string;
  user_id: string;
  currency: string;
  amount: string;
  balance: string;
  round_id: string;
  game_session_id: string;
  bet_tx_id: string;
  refunded_amount: string;
  created_at: string;
  /** The stored request's fingerprint; '' while no request has claimed the row (a void's tombstone). */
  fingerprint: string;
  /** A refusal's tombstone: the content refused first (other content is a mismatch); else ''. */
  refused_fingerprint: string;
}

export interface BooksReport {
  /** Currencies whose entries do not sum to zero (must be empty). */
  unbalancedCurrencies: { currency: string; sum: string }[];
  /** Player accounts whose balance differs from the sum of their entries (must be empty). */
  driftedAccounts: { user_id: string; currency: string; balance: string; entries: string }[];
  /** Player accounts below zero (must be empty). */
  negativeAccounts: { user_id: string; currency: string; balance: string }[];
}

interface AccountRow {
  id: string;
  balance: string;
  blocked: boolean;
}

interface TransactionRow {
  id: string;
  kind: string;
  tx_id: string;
  status: TransactionRecord['status'];
  fingerprint: string | null;
  error_code: string | null;
  user_id: string | null;
  currency: string | null;
  amount: string | null;
  round_id: string | null;
  game_session_id: string | null;
  bet_tx_id: string | null;
  balance_after: string | null;
  refunded_amount: string;
  created_at: string;
  attempt_id: string | null;
  refused_fingerprint: string | null;
}

/** What a money request decided inside its transaction; turned into an answer after COMMIT. */
type Decision = { status: 'applied'; balance: bigint } | { status: 'declined'; code: ErrorCode };
type AppliedDecision = { status: 'applied'; balance: bigint; transactionId: string };

const TX_COLUMNS = `id::text, kind, tx_id, status, fingerprint, error_code, user_id, currency, amount::text,
  round_id, game_session_id, bet_tx_id, balance_after::text, refunded_amount::text, created_at::text, attempt_id,
  refused_fingerprint`;

const FIELD_LIMITS = {
  tx_id: 128,
  user_id: 128,
  round_id: 128,
  game_session_id: 128,
  bet_tx_id: 128,
  attempt_id: 128,
  session_id: 256,
  game_id: 128,
} as const;

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const TIMEOUT_SQLSTATES = new Set(['57014', '55P03']);
const MAX_ATTEMPTS = 4;

/** Text of a field, checked against its limit; '' when optional and absent. */
function field(input: object, name: keyof typeof FIELD_LIMITS, required: boolean): string {
  const value = (input as Record<string, unknown>)[name];
  if (value === undefined || value === null || value === '') {
    if (required) throw new PhiaError('INVALID_REQUEST', `${name} is required`);
    return '';
  }
  if (typeof value !== 'string' || value.length > FIELD_LIMITS[name]) {
    throw new PhiaError('INVALID_REQUEST', `${name} must be a string of at most ${FIELD_LIMITS[name]} characters`);
  }
  return value;
}

/**
 * Parses a NUMERIC read back as text (may carry fewer decimals, or a sign for house accounts). It
 * takes whatever a balance column may hold, so a stored value never makes an account unreadable.
 */
function unitsFromSql(text: string, decimals: number): bigint {
  const negative = text.startsWith('-');
  const units = parseBalance(negative ? text.slice(1) : text, decimals);
  return negative ? -units : units;
}

export class Ledger {
  private readonly currencies: CurrencyTable;
  private readonly commitMarginMs: number;
  private readonly defaultStatementTimeoutMs: number;
  private readonly defaultSessionTtlSeconds: number;
  private readonly maxSessionTtlSeconds: number;
  private readonly hooks: LedgerHooks;
  /** Ids of the house and cashier accounts per currency; they never change once created. */
  private readonly counterAccounts = new Map<string, string>();

  constructor(
    private readonly db: Database,
    options: LedgerOptions,
  ) {
    this.currencies = options.currencies;
    this.commitMarginMs = options.commitMarginMs ?? 50;
    this.defaultStatementTimeoutMs = options.defaultStatementTimeoutMs ?? 10_000;
    this.defaultSessionTtlSeconds = options.defaultSessionTtlSeconds ?? 3600;
    this.maxSessionTtlSeconds = options.maxSessionTtlSeconds ?? 7 * 24 * 3600;
    this.hooks = options.hooks ?? {};
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  async getBalance(
    input: { user_id: string; currency: string; session_id?: string },
    ctx: CallContext = {},
  ): Promise<{ balance: string; currency: string }> {
    const userId = field(input, 'user_id', true);
    const decimals = currencyDecimals(this.currencies, input.currency);
    const sessionId = field(input, 'session_id', false);
    // One statement, no explicit transaction: it reads one snapshot by itself (half the round trips
    // of BEGIN … COMMIT). The precedence stays: a session problem first, then a missing account.
    this.ensureTimeLeft(ctx, 'before balance');
    type BalanceFacts = {
      balance: string | null;
      session_user_id: string | null;
      session_currency: string | null;
      session_live: boolean | null;
    };
    let found: { rows: BalanceFacts[] };
    try {
      found = await this.db.query<BalanceFacts>(
        `SELECT a.balance::text AS balance, s.user_id AS session_user_id, s.currency AS session_currency,
           (s.closed_at IS NULL AND s.expires_at > now()) AS session_live
         FROM (SELECT 1) AS one
         LEFT JOIN accounts a ON a.owner_kind = 'player' AND a.user_id = $1 AND a.currency = $2
         LEFT JOIN sessions s ON $3 <> '' AND s.session_id = $3`,
        [userId, input.currency, sessionId],
        ctx.deadline === undefined ? {} : { connectWaitMs: ctx.deadline - Date.now() - this.commitMarginMs },
      );
    } catch (error) {
      throw this.databaseError(error, ctx, 'balance');
    }
    const row = found.rows[0];
    if (sessionId !== '') {
      const session =
        row?.session_user_id === null || row?.session_user_id === undefined
          ? undefined
          : { user_id: row.session_user_id, currency: row.session_currency ?? '', live: row.session_live === true };
      const problem = sessionProblem(session, userId, input.currency);
      if (problem) throw new PhiaError(problem);
    }
    if (row?.balance === null || row?.balance === undefined) throw new PhiaError('ACCOUNT_NOT_FOUND');
    return { balance: formatAmount(unitsFromSql(row.balance, decimals), decimals), currency: input.currency };
  }

  async getTransaction(input: { kind: string; tx_id: string }): Promise<TransactionRecord> {
    const kind = this.ledgerKind(input.kind);
    const txId = field(input, 'tx_id', true);
    const found = await this.db.query<TransactionRow>(
      `SELECT ${TX_COLUMNS} FROM transactions WHERE kind = $1 AND tx_id = $2`,
      [kind, txId],
    );
    const row = found.rows[0];
    if (!row) throw new PhiaError('ACCOUNT_NOT_FOUND', 'no such transaction');
    const decimals = row.currency ? (this.currencies.get(row.currency) ?? 0) : 0;
    const money = (text: string | null) => (text === null ? '' : formatAmount(unitsFromSql(text, decimals), decimals));
    return {
      kind: row.kind,
      tx_id: row.tx_id,
      status: row.status,
      error_code: row.error_code ?? '',
      user_id: row.user_id ?? '',
      currency: row.currency ?? '',
      amount: money(row.amount),
      balance: money(row.balance_after),
      round_id: row.round_id ?? '',
      game_session_id: row.game_session_id ?? '',
      bet_tx_id: row.bet_tx_id ?? '',
      refunded_amount: money(row.refunded_amount),
      created_at: new Date(row.created_at).toISOString(),
      fingerprint: row.fingerprint ?? '',
      refused_fingerprint: row.refused_fingerprint ?? '',
    };
  }

  /** The double-entry invariants; tests and the chaos harness assert all three lists are empty. */
  async checkBooks(): Promise<BooksReport> {
    const unbalanced = await this.db.query<{ currency: string; sum: string }>(
      `SELECT a.currency, sum(e.amount)::text AS sum FROM entries e JOIN accounts a ON a.id = e.account_id
       GROUP BY a.currency HAVING sum(e.amount) <> 0`,
    );
    const drifted = await this.db.query<{ user_id: string; currency: string; balance: string; entries: string }>(
      `SELECT a.user_id, a.currency, a.balance::text, coalesce(sum(e.amount), 0)::text AS entries
       FROM accounts a LEFT JOIN entries e ON e.account_id = a.id
       WHERE a.owner_kind = 'player' GROUP BY a.id HAVING a.balance <> coalesce(sum(e.amount), 0)`,
    );
    const negative = await this.db.query<{ user_id: string; currency: string; balance: string }>(
      `SELECT user_id, currency, balance::text FROM accounts WHERE owner_kind = 'player' AND balance < 0`,
    );
    return {
      unbalancedCurrencies: unbalanced.rows,
      driftedAccounts: drifted.rows,
      negativeAccounts: negative.rows,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Money requests

  bet(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return this.moneyRequest('bet', input, ctx);
  }

  win(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return this.moneyRequest('win', input, ctx);
  }

  refund(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return this.moneyRequest('refund', input, ctx);
  }

  deposit(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return this.moneyRequest('deposit', input, ctx);
  }

  withdraw(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return this.moneyRequest('withdraw', input, ctx);
  }

  private async moneyRequest(kind: LedgerKind, input: MoneyInput, ctx: CallContext): Promise<MoneyAnswer> {
    const isGameRequest = kind === 'bet' || kind === 'win' || kind === 'refund';
    const request = {
      tx_id: field(input, 'tx_id', true),
      user_id: field(input, 'user_id', true),
      currency: input.currency,
      round_id: field(input, 'round_id', isGameRequest),
      game_session_id: field(input, 'game_session_id', isGameRequest),
      bet_tx_id: kind === 'win' || kind === 'refund' ? field(input, 'bet_tx_id', false) : '',
      session_id: isGameRequest ? field(input, 'session_id', false) : '',
      game_id: isGameRequest ? field(input, 'game_id', false) : '',
      attempt_id: field(input, 'attempt_id', false),
    };
    const decimals = currencyDecimals(this.currencies, request.currency);
    if (typeof input.amount !== 'string') throw new PhiaError('INVALID_REQUEST', 'amount must be a decimal string');
    const units = parseAmount(input.amount, decimals);
    const amount = formatAmount(units, decimals);
    const fingerprint = moneyFingerprint(kind, { ...request, amount });
    const counterAccountId = await this.counterAccount(
      kind === 'deposit' || kind === 'withdraw' ? 'cashier' : 'house',
      request.currency,
    );

    const decision = await this.run(ctx, kind, async (tx): Promise<Decision> => {
      const account =
        kind === 'deposit'
          ? await this.lockOrCreatePlayerAccount(tx, request.user_id, request.currency)
          : await this.lockPlayerAccount(tx, request.user_id, request.currency);
      const facts = await this.requestFacts(tx, kind, request);
      if (facts.existing)
        return this.decideForExisting(tx, facts.existing, fingerprint, decimals, { ...request, amount });

      const record = { kind, ...request, amount, fingerprint };
      if (!account) return this.storeDeclined(tx, record, 'ACCOUNT_NOT_FOUND');
      const balance = unitsFromSql(account.balance, decimals);

      switch (kind) {
        case 'bet': {
          if (request.session_id !== '') {
            const problem = sessionProblem(facts.session, request.user_id, request.currency);
            if (problem) return this.storeDeclined(tx, record, problem);
          }
          if (account.blocked) return this.storeDeclined(tx, record, 'PLAYER_BLOCKED');
          if (facts.roundTombstoned) return this.storeDeclined(tx, record, 'BET_REFUNDED');
          if (balance < units) return this.storeDeclined(tx, record, 'INSUFFICIENT_FUNDS');
          return this.storeApplied(tx, record, account.id, counterAccountId, balance, -units, decimals);
        }
        case 'win': {
          const bet = facts.namedBet;
          if (bet && ofAnotherAccount(bet, record)) return this.storeDeclined(tx, record, 'INVALID_REQUEST');
          if (facts.roundTombstoned || bet?.refunded) return this.storeDeclined(tx, record, 'BET_REFUNDED');
          if (bet?.status === 'declined' || bet?.status === 'voided') {
            return this.storeDeclined(tx, record, 'BET_NOT_APPLIED');
          }
          if (!fitsBalance(balance + units, decimals)) return this.storeDeclined(tx, record, 'INVALID_REQUEST');
          return this.storeApplied(tx, record, account.id, counterAccountId, balance, units, decimals);
        }
        case 'refund':
          return this.applyRefund(tx, record, account.id, counterAccountId, balance, units, decimals);
        case 'deposit':
          if (!fitsBalance(balance + units, decimals)) return this.storeDeclined(tx, record, 'INVALID_REQUEST');
          return this.storeApplied(tx, record, account.id, counterAccountId, balance, units, decimals);
        case 'withdraw': {
          if (balance < units) return this.storeDeclined(tx, record, 'INSUFFICIENT_FUNDS');
          return this.storeApplied(tx, record, account.id, counterAccountId, balance, -units, decimals);
        }
      }
    });

    if (decision.status === 'declined') throw new PhiaError(decision.code);
    return { balance: formatAmount(decision.balance, decimals), currency: request.currency, tx_id: request.tx_id };
  }

  /** A row with this (kind, tx_id) exists: replay it, or settle a tombstone / early void. */
  private async decideForExisting(
    tx: Queryable,
    existing: TransactionRow,
    fingerprint: string,
    decimals: number,
    request: Omit<MoneyInput, 'amount'> & { amount: string },
  ): Promise<Decision> {
    if (existing.fingerprint === null && existing.refused_fingerprint !== null) {
      // A refusal's tombstone: the gateway refused other content under this key first.
      if (existing.refused_fingerprint !== fingerprint) throw new PhiaError('IDEMPOTENCY_MISMATCH');
    }
    if (existing.fingerprint === null) {
      // Made by a refund (tombstone) or a Void before this request arrived: it can never apply now.
      // Record what the request was, so its duplicates replay the same refusal.
      // A tombstone's own code is the error a void recorded (the answer the request already got).
      const code: ErrorCode =
        existing.status === 'tombstone'
          ? isErrorCode(existing.error_code)
            ? (existing.error_code as ErrorCode)
            : 'BET_REFUNDED'
          : this.storedCode(existing);
      await tx.query(
        `UPDATE transactions SET fingerprint = $2, status = $3, error_code = $4, user_id = $5, currency = $6,
           amount = $7, round_id = $8, game_session_id = $9, bet_tx_id = $10, session_id = $11, game_id = $12,
           attempt_id = $13, updated_at = now()
         WHERE id = $1`,
        [
          existing.id,
          fingerprint,
          // A refund's tombstone stays one (its bet's win is refused) unless it is only BET_REFUNDED.
          existing.status === 'tombstone' && code === 'BET_REFUNDED' ? 'declined' : existing.status,
          code,
          request.user_id,
          request.currency,
          request.amount,
          request.round_id || null,
          request.game_session_id || null,
          request.bet_tx_id || null,
          request.session_id || null,
          request.game_id || null,
          // The attempt that met the tombstone decided this answer: its own void must know it.
          request.attempt_id || null,
        ],
      );
      return { status: 'declined', code };
    }
    if (existing.fingerprint !== fingerprint) throw new PhiaError('IDEMPOTENCY_MISMATCH');
    if (existing.status === 'applied') {
      return { status: 'applied', balance: unitsFromSql(existing.balance_after ?? '0', decimals) };
    }
    return { status: 'declined', code: this.storedCode(existing) };
  }

  private storedCode(row: TransactionRow): ErrorCode {
    const code = row.error_code;
    if (isErrorCode(code)) return code as ErrorCode;
    return row.status === 'voided' ? 'WALLET_TIMEOUT' : 'INTERNAL';
  }

  private async applyRefund(
    tx: Queryable,
    record: RecordFields,
    accountId: string,
    houseAccountId: string,
    balance: bigint,
    units: bigint,
    decimals: number,
  ): Promise<Decision> {
    // The bets this refund reverses, locked (the account lock already serializes this player).
    const bets = (
      record.bet_tx_id !== ''
        ? await tx.query<TransactionRow>(
            `SELECT ${TX_COLUMNS} FROM transactions WHERE kind = 'bet' AND tx_id = $1 FOR UPDATE`,
            [record.bet_tx_id],
          )
        : await tx.query<TransactionRow>(
            `SELECT ${TX_COLUMNS} FROM transactions WHERE kind = 'bet' AND user_id = $1 AND currency = $2
               AND game_session_id = $3 AND round_id = $4 ORDER BY id FOR UPDATE`,
            [record.user_id, record.currency, record.game_session_id, record.round_id],
          )
    ).rows;

    if (bets.some((bet) => ofAnotherAccount(bet, record))) return this.storeDeclined(tx, record, 'INVALID_REQUEST');
    const applied = bets.filter((bet) => bet.status === 'applied');
    if (applied.length === 0) {
      // Nothing to reverse. If the bet was never seen, leave a tombstone so it can never apply later.
      if (bets.length === 0) {
        if (record.bet_tx_id !== '') {
          const made = await tx.query(
            `INSERT INTO transactions (kind, tx_id, status, user_id, currency, round_id, game_session_id)
             VALUES ('bet', $1, 'tombstone', $2, $3, $4, $5) ON CONFLICT (kind, tx_id) DO NOTHING RETURNING id`,
            [record.bet_tx_id, record.user_id, record.currency, record.round_id, record.game_session_id],
          );
          if (made.rows.length === 0) throw new RetryTransaction();
        } else {
          await tx.query(
            `INSERT INTO round_tombstones (user_id, currency, game_session_id, round_id, refund_tx_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
            [record.user_id, record.currency, record.game_session_id, record.round_id, record.tx_id],
          );
        }
      }
      return this.storeApplied(tx, record, accountId, houseAccountId, balance, 0n, decimals);
    }

    const remaining = applied.map((bet) => ({
      id: bet.id,
      left: unitsFromSql(bet.amount ?? '0', decimals) - unitsFromSql(bet.refunded_amount, decimals),
    }));
    const totalLeft = remaining.reduce((sum, bet) => sum + bet.left, 0n);
    if (units > totalLeft) return this.storeDeclined(tx, record, 'REFUND_EXCEEDS_BET');
    if (!fitsBalance(balance + units, decimals)) return this.storeDeclined(tx, record, 'INVALID_REQUEST');

    const decision = await this.storeApplied(tx, record, accountId, houseAccountId, balance, units, decimals);
    const refundId = decision.transactionId;
    let toAllocate = units;
    for (const bet of remaining) {
      if (toAllocate === 0n) break;
      const part = bet.left < toAllocate ? bet.left : toAllocate;
      if (part === 0n) continue;
      toAllocate -= part;
      const partText = formatAmount(part, decimals);
      await tx.query(
        `UPDATE transactions SET refunded_amount = refunded_amount + $2, updated_at = now() WHERE id = $1`,
        [bet.id, partText],
      );
      await tx.query(
        `INSERT INTO refund_allocations (refund_transaction_id, bet_transaction_id, amount) VALUES ($1, $2, $3)`,
        [refundId, bet.id, partText],
      );
    }
    return decision;
  }

  // ---------------------------------------------------------------------------------------------
  // Void

  /**
   * Makes sure (kind, tx_id) never takes effect: reverses it if applied, tombstones it if never
   * seen. Idempotent. `errorCode` is what the caller answered; a later duplicate replays it.
   */
  async voidTransaction(
    input: {
      kind: string;
      tx_id: string;
      error_code?: string;
      fingerprint?: string;
      attempt_id?: string;
      refusal?: boolean;
    },
    ctx: CallContext = {},
  ): Promise<VoidAnswer> {
    const named = typeof input.fingerprint === 'string' && input.fingerprint !== '' ? input.fingerprint : null;
    // A refusal names the content it refused without claiming the key for it.
    const refused = input.refusal === true ? named : null;
    const fingerprint = input.refusal === true ? null : named;
    const attemptId = field(input, 'attempt_id', false);
    const kind = this.ledgerKind(input.kind);
    const txId = field(input, 'tx_id', true);
    const errorCode: ErrorCode = isErrorCode(input.error_code) ? (input.error_code as ErrorCode) : 'WALLET_TIMEOUT';

    return this.run(ctx, 'void', async (tx): Promise<VoidAnswer> => {
      const peek = await this.findTransaction(tx, kind, txId, false);
      let account: (AccountRow & { currency: string }) | undefined;
      if (peek?.user_id && peek.currency) {
        const locked = await this.lockPlayerAccount(tx, peek.user_id, peek.currency);
        if (locked) account = { ...locked, currency: peek.currency };
      }
      const row = await this.findTransaction(tx, kind, txId);
      const answer = (outcome: VoidOutcome, balance?: bigint): VoidAnswer => {
        const currency = account?.currency ?? '';
        const decimals = this.currencies.get(currency) ?? 0;
        const shown = balance ?? (account ? unitsFromSql(account.balance, decimals) : undefined);
        return {
          kind,
          tx_id: txId,
          outcome,
          currency,
          balance: shown === undefined ? '' : formatAmount(shown, decimals),
        };
      };

      if (!row) {
        const made = await tx.query(
          `INSERT INTO transactions (kind, tx_id, status, error_code, fingerprint, refused_fingerprint)
           VALUES ($1, $2, 'voided', $3, $4, $5)
           ON CONFLICT (kind, tx_id) DO NOTHING RETURNING id`,
          [kind, txId, errorCode, fingerprint, refused],
        );
        if (made.rows.length === 0) throw new RetryTransaction();
        return answer('tombstoned');
      }
      if (row.user_id !== peek?.user_id || row.currency !== peek?.currency) throw new RetryTransaction();
      if (fingerprint !== null && row.fingerprint !== null && row.fingerprint !== fingerprint) {
        return answer('not_matching');
      }
      if (row.status === 'voided') {
        // A refusal's tombstone claims no content (the gateway refused without knowing the key's
        // owner). A void that names its content speaks for a request that was answered with this
        // error: the row becomes that request's, so its copies replay its error and other content is
        // a mismatch.
        if (fingerprint !== null && row.fingerprint === null) {
          await tx.query(
            `UPDATE transactions SET fingerprint = $2, error_code = $3, updated_at = now() WHERE id = $1`,
            [row.id, fingerprint, errorCode],
          );
        }
        return answer('already_voided');
      }
      // Applied by another attempt: a duplicate that got its own answer (200). Undoing it would break
      // that answer; the attempt this void speaks for never applied anything.
      if (row.status === 'applied' && attemptId !== '' && row.attempt_id !== null && row.attempt_id !== attemptId) {
        return answer('kept');
      }
      if (row.status === 'tombstone') {
        // A refund's tombstone of a bet never seen, and the bet itself was answered with an error:
        // that error (not BET_REFUNDED) is what copies of the bet must get.
        if (row.fingerprint === null && row.error_code === null) {
          await tx.query(
            `UPDATE transactions SET error_code = $2, refused_fingerprint = $3, updated_at = now() WHERE id = $1`,
            [row.id, errorCode, refused],
          );
        }
        return answer('tombstoned');
      }
      if (row.status === 'declined') {
        // This very attempt's decline was committed, but its answer never reached the caller, who
        // answered the error instead: that error is what PHIA got, so copies must replay it.
        if (attemptId !== '' && row.attempt_id === attemptId) {
          // A refund's tombstone stays one (so the bet's win is still refused), now with the error.
          await tx.query(`UPDATE transactions SET status = $3, error_code = $2, updated_at = now() WHERE id = $1`, [
            row.id,
            errorCode,
            row.error_code === 'BET_REFUNDED' ? 'tombstone' : 'voided',
          ]);
          return answer('decline_replaced');
        }
        return answer('declined');
      }
      if (!account || row.currency === null) throw new PhiaError('ACCOUNT_NOT_FOUND');

      // Applied: write the reverse movement against the same counter account.
      const decimals = currencyDecimals(this.currencies, row.currency);
      const amount = unitsFromSql(row.amount ?? '0', decimals);
      let delta: bigint;
      if (kind === 'bet') {
        delta = amount - unitsFromSql(row.refunded_amount, decimals);
      } else if (kind === 'withdraw') {
        delta = amount;
      } else if (kind === 'refund') {
        // A voided bet gave back only its unrefunded part: the refunded part is no longer the player's
        // to return, so only allocations to bets still applied are taken back.
        const allocations = await tx.query<{ bet_transaction_id: string; amount: string }>(
          `SELECT a.bet_transaction_id::text, a.amount::text FROM refund_allocations a
           JOIN transactions b ON b.id = a.bet_transaction_id AND b.status = 'applied'
           WHERE a.refund_transaction_id = $1`,
          [row.id],
        );
        delta = 0n;
        for (const allocation of allocations.rows) {
          delta -= unitsFromSql(allocation.amount, decimals);
          await tx.query(
            `UPDATE transactions SET refunded_amount = refunded_amount - $2, updated_at = now() WHERE id = $1`,
            [allocation.bet_transaction_id, allocation.amount],
          );
        }
      } else {
        delta = -amount;
      }
      const balance = unitsFromSql(account.balance, decimals);
      if (balance + delta < 0n) throw new PhiaError('INSUFFICIENT_FUNDS', 'cannot reverse: balance already spent');
      // Only a debit's reversal meeting credits paid since can get here; like a spent credit above, it
      // waits (the caller retries) until the balance has room, and the account stays usable meanwhile.
      if (!fitsBalance(balance + delta, decimals)) {
        throw new PhiaError('INVALID_REQUEST', 'cannot reverse: the balance would pass its limit');
      }
      const counterAccountId = await this.counterAccount(
        kind === 'deposit' || kind === 'withdraw' ? 'cashier' : 'house',
        row.currency,
      );
      await this.move(tx, row.id, account.id, counterAccountId, delta, decimals);
      await tx.query(`UPDATE transactions SET status = 'voided', error_code = $2, updated_at = now() WHERE id = $1`, [
        row.id,
        errorCode,
      ]);
      return answer('reversed', balance + delta);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Sessions and account status

  async openSession(
    input: { user_id: string; currency: string; ttl_seconds?: number },
    ctx: CallContext = {},
  ): Promise<{ session_id: string; expires_at: string }> {
    const userId = field(input, 'user_id', true);
    currencyDecimals(this.currencies, input.currency);
    const ttl = input.ttl_seconds && input.ttl_seconds > 0 ? input.ttl_seconds : this.defaultSessionTtlSeconds;
    if (!Number.isInteger(ttl) || ttl > this.maxSessionTtlSeconds) {
      throw new PhiaError('INVALID_REQUEST', `ttl_seconds must be at most ${this.maxSessionTtlSeconds}`);
    }
    const sessionId = randomBytes(24).toString('base64url');
    return this.run(ctx, 'open_session', async (tx) => {
      const account = await tx.query(
        `SELECT 1 FROM accounts WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2`,
        [userId, input.currency],
      );
      if (account.rows.length === 0) throw new PhiaError('ACCOUNT_NOT_FOUND');
      const made = await tx.query<{ expires_at: string }>(
        `INSERT INTO sessions (session_id, user_id, currency, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at::text`,
        [sessionId, userId, input.currency, ttl],
      );
      return { session_id: sessionId, expires_at: new Date(made.rows[0]?.expires_at ?? Date.now()).toISOString() };
    });
  }

  async closeSession(input: { session_id: string }, ctx: CallContext = {}): Promise<void> {
    const sessionId = field(input, 'session_id', true);
    await this.run(ctx, 'close_session', async (tx) => {
      const closed = await tx.query(
        `UPDATE sessions SET closed_at = coalesce(closed_at, now()) WHERE session_id = $1 RETURNING 1`,
        [sessionId],
      );
      if (closed.rows.length === 0) throw new PhiaError('SESSION_NOT_FOUND');
    });
  }

  async setAccountStatus(
    input: { user_id: string; currency: string; blocked: boolean },
    ctx: CallContext = {},
  ): Promise<{ user_id: string; currency: string; blocked: boolean }> {
    const userId = field(input, 'user_id', true);
    currencyDecimals(this.currencies, input.currency);
    return this.run(ctx, 'set_account_status', async (tx) => {
      const updated = await tx.query<{ blocked: boolean }>(
        `UPDATE accounts SET blocked = $3, updated_at = now()
         WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2 RETURNING blocked`,
        [userId, input.currency, input.blocked === true],
      );
      if (updated.rows.length === 0) throw new PhiaError('ACCOUNT_NOT_FOUND');
      return { user_id: userId, currency: input.currency, blocked: updated.rows[0]?.blocked === true };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Building blocks

  /**
   * Runs one database transaction under the caller's deadline: timeouts follow the time left, and
   * it rolls back instead of committing when the deadline has passed or is too close.
   */
  private async run<T>(ctx: CallContext, operation: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.ensureTimeLeft(ctx, `before ${operation}`);
      try {
        const deadline = ctx.deadline;
        return await this.db.transaction(
          async (tx) => {
            const value = await fn(tx);
            if (this.hooks.beforeCommit) await this.hooks.beforeCommit(operation);
            this.ensureTimeLeft(ctx, `before committing ${operation}`);
            return value;
          },
          deadline === undefined
            ? { timeoutMs: this.defaultStatementTimeoutMs }
            : {
                // The wait for a pool connection counts against the deadline: bounded by it, and
                // checked again once connected (the timeouts follow what is left).
                connectWaitMs: deadline - Date.now() - this.commitMarginMs,
                timeoutMs: () => {
                  this.ensureTimeLeft(ctx, `after waiting for a database connection for ${operation}`);
                  return deadline - Date.now() - this.commitMarginMs;
                },
              },
        );
      } catch (error) {
        if (error instanceof PhiaError || error instanceof DeadlineExceededError) throw error;
        const state = sqlState(error);
        const retryable = error instanceof RetryTransaction || (state !== undefined && RETRYABLE_SQLSTATES.has(state));
        if (retryable && attempt < MAX_ATTEMPTS) continue;
        throw this.databaseError(error, ctx, operation);
      }
    }
  }

  /**
   * A database failure as the error the wallet answers: timeouts (statement, lock, or the wait for a
   * pool connection under a deadline) → DeadlineExceededError (WALLET_TIMEOUT); a lost connection, or
   * no pool connection without a deadline → DatabaseUnavailableError (WALLET_UNAVAILABLE); else as is.
   */
  private databaseError(error: unknown, ctx: CallContext, operation: string): unknown {
    if (error instanceof PhiaError || error instanceof DeadlineExceededError) return error;
    const state = sqlState(error);
    if (state !== undefined && TIMEOUT_SQLSTATES.has(state)) {
      return new DeadlineExceededError(`${operation} ran out of time in the database`);
    }
    if (isPoolTimeout(error)) {
      return ctx.deadline === undefined
        ? new DatabaseUnavailableError(error)
        : new DeadlineExceededError(`${operation}: no database connection before the deadline`);
    }
    if (isConnectionFailure(error)) return new DatabaseUnavailableError(error);
    return error;
  }

  private ensureTimeLeft(ctx: CallContext, moment: string): void {
    if (ctx.deadline !== undefined && ctx.deadline - Date.now() < this.commitMarginMs) {
      throw new DeadlineExceededError(moment);
    }
  }

  private ledgerKind(kind: string): LedgerKind {
    if (kind === 'bet' || kind === 'win' || kind === 'refund' || kind === 'deposit' || kind === 'withdraw') return kind;
    throw new PhiaError('INVALID_REQUEST', 'kind must be bet, win, refund, deposit or withdraw');
  }

  private async counterAccount(ownerKind: 'house' | 'cashier', currency: string): Promise<string> {
    const key = `${ownerKind}:${currency}`;
    const cached = this.counterAccounts.get(key);
    if (cached !== undefined) return cached;
    // Outside any money transaction, so a rollback there can never leave a stale cached id.
    await this.db.query(
      `INSERT INTO accounts (owner_kind, user_id, currency) VALUES ($1, '', $2) ON CONFLICT DO NOTHING`,
      [ownerKind, currency],
    );
    const found = await this.db.query<{ id: string }>(
      `SELECT id::text FROM accounts WHERE owner_kind = $1 AND user_id = '' AND currency = $2`,
      [ownerKind, currency],
    );
    const id = found.rows[0]?.id;
    if (id === undefined) throw new Error(`could not create the ${ownerKind} account for ${currency}`);
    this.counterAccounts.set(key, id);
    return id;
  }

  private async lockPlayerAccount(tx: Queryable, userId: string, currency: string): Promise<AccountRow | undefined> {
    const found = await tx.query<AccountRow>(
      `SELECT id::text, balance::text, blocked FROM accounts
       WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2 FOR UPDATE`,
      [userId, currency],
    );
    return found.rows[0];
  }

  private async lockOrCreatePlayerAccount(tx: Queryable, userId: string, currency: string): Promise<AccountRow> {
    await tx.query(
      `INSERT INTO accounts (owner_kind, user_id, currency) VALUES ('player', $1, $2) ON CONFLICT DO NOTHING`,
      [userId, currency],
    );
    const account = await this.lockPlayerAccount(tx, userId, currency);
    if (!account) throw new RetryTransaction();
    return account;
  }

  private async findTransaction(
    tx: Queryable,
    kind: string,
    txId: string,
    lock = true,
  ): Promise<TransactionRow | undefined> {
    const found = await tx.query<TransactionRow>(
      `SELECT ${TX_COLUMNS} FROM transactions WHERE kind = $1 AND tx_id = $2${lock ? ' FOR UPDATE' : ''}`,
      [kind, txId],
    );
    return found.rows[0];
  }

  private async checkSession(
    tx: Queryable,
    sessionId: string,
    userId: string,
    currency: string,
  ): Promise<ErrorCode | undefined> {
    const found = await tx.query<SessionFacts>(
      `SELECT user_id, currency, (closed_at IS NULL AND expires_at > now()) AS live FROM sessions WHERE session_id = $1`,
      [sessionId],
    );
    return sessionProblem(found.rows[0], userId, currency);
  }

  /**
   * Everything a money request needs to know besides its account, in one statement run after the
   * account lock (so it sees whatever the previous holder of the lock committed): its own earlier
   * row, the round's tombstone, the session, and (for wins) the bet it names.
   */
  private async requestFacts(
    tx: Queryable,
    kind: LedgerKind,
    request: {
      tx_id: string;
      user_id: string;
      currency: string;
      game_session_id: string;
      round_id: string;
      bet_tx_id: string;
      session_id: string;
    },
  ): Promise<{ existing?: TransactionRow; roundTombstoned: boolean; namedBet?: NamedBet; session?: SessionFacts }> {
    const found = await tx.query<{
      existing: TransactionRow | null;
      round_tombstoned: boolean;
      named_bet: NamedBet | null;
      session: SessionFacts | null;
    }>(
      `SELECT
         (SELECT row_to_json(x) FROM (SELECT ${TX_COLUMNS} FROM transactions WHERE kind = $1 AND tx_id = $2) x) AS existing,
         EXISTS (SELECT 1 FROM round_tombstones WHERE user_id = $3 AND currency = $4 AND game_session_id = $5
                 AND round_id = $6) AS round_tombstoned,
         (SELECT row_to_json(b) FROM (SELECT user_id, currency, status,
            (status = 'tombstone' OR refunded_amount > 0 OR error_code = 'BET_REFUNDED') AS refunded
            FROM transactions WHERE kind = 'bet' AND tx_id = $7) b) AS named_bet,
         (SELECT row_to_json(s) FROM (SELECT user_id, currency, (closed_at IS NULL AND expires_at > now()) AS live
            FROM sessions WHERE session_id = $8) s) AS session`,
      [
        kind,
        request.tx_id,
        request.user_id,
        request.currency,
        request.game_session_id,
        request.round_id,
        kind === 'win' ? request.bet_tx_id : '',
        request.session_id,
      ],
    );
    const row = found.rows[0];
    return {
      existing: row?.existing ?? undefined,
      roundTombstoned: row?.round_tombstoned === true,
      namedBet: row?.named_bet ?? undefined,
      session: row?.session ?? undefined,
    };
  }

  private async storeDeclined(tx: Queryable, record: RecordFields, code: ErrorCode): Promise<Decision> {
    const made = await tx.query<{ id: string }>(
      `INSERT INTO transactions (kind, tx_id, status, fingerprint, error_code, user_id, currency, amount, round_id,
         game_session_id, bet_tx_id, session_id, game_id, attempt_id)
       VALUES ($1, $2, 'declined', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       ON CONFLICT (kind, tx_id) DO NOTHING RETURNING id::text`,
      [record.kind, record.tx_id, record.fingerprint, code, ...recordParams(record), record.attempt_id || null],
    );
    if (!made.rows[0]) throw new RetryTransaction();
    return { status: 'declined', code };
  }

  private async storeApplied(
    tx: Queryable,
    record: RecordFields,
    accountId: string,
    counterAccountId: string,
    balance: bigint,
    delta: bigint,
    decimals: number,
  ): Promise<AppliedDecision> {
    const after = balance + delta;
    // Callers check first; the database's constraints back this up.
    if (after < 0n || !fitsBalance(after, decimals)) throw new Error('refusing to store a balance out of its limits');
    // The outcome row, the balance and both entries in one statement: one round trip.
    const made = await tx.query<{ id: string }>(
      `WITH t AS (
         INSERT INTO transactions (kind, tx_id, status, fingerprint, user_id, currency, amount, round_id,
           game_session_id, bet_tx_id, session_id, game_id, attempt_id, balance_after)
         VALUES ($1, $2, 'applied', $3, $4, $5, $6, $7, $8, $9, $10, $11, $16, $12)
         ON CONFLICT (kind, tx_id) DO NOTHING RETURNING id
       ), player AS (
         UPDATE accounts SET balance = balance + $14::numeric, updated_at = now()
         WHERE id = $13 AND $14::numeric <> 0 AND EXISTS (SELECT 1 FROM t) RETURNING id
       ), moved AS (
         INSERT INTO entries (transaction_id, account_id, amount)
         SELECT t.id, x.account_id, x.amount FROM t
         CROSS JOIN (VALUES ($13::bigint, $14::numeric), ($15::bigint, -($14::numeric))) AS x (account_id, amount)
         WHERE $14::numeric <> 0
       )
       SELECT id::text FROM t`,
      [
        record.kind,
        record.tx_id,
        record.fingerprint,
        ...recordParams(record),
        formatAmount(after, decimals),
        accountId,
        formatAmount(delta, decimals),
        counterAccountId,
        record.attempt_id || null,
      ],
    );
    const id = made.rows[0]?.id;
    if (id === undefined) throw new RetryTransaction();
    return { status: 'applied', balance: after, transactionId: id };
  }

  /** Moves delta into the player's account and -delta into the counter account, as two entries. */
  private async move(
    tx: Queryable,
    transactionId: string,
    accountId: string,
    counterAccountId: string,
    delta: bigint,
    decimals: number,
  ): Promise<void> {
    if (delta === 0n) return;
    const text = formatAmount(delta, decimals);
    await tx.query(
      `WITH player AS (
         UPDATE accounts SET balance = balance + $3::numeric, updated_at = now() WHERE id = $2 RETURNING id
       )
       INSERT INTO entries (transaction_id, account_id, amount)
       VALUES ($1, (SELECT id FROM player), $3::numeric), ($1, $4, -($3::numeric))`,
      [transactionId, accountId, text, counterAccountId],
    );
  }
}

interface SessionFacts {
  user_id: string;
  currency: string;
  live: boolean;
}

/** The bet a win names (bet_tx_id); user_id is null on a void's tombstone of a bet never seen. */
interface NamedBet {
  user_id: string | null;
  currency: string | null;
  status: TransactionRecord['status'];
  /** Reversed (in part) by a refund, or tombstoned by one: its win is refused BET_REFUNDED. */
  refunded: boolean;
}

/** A bet named by a win or refund that belongs to another player or currency (contract rule 9). */
function ofAnotherAccount(
  bet: { user_id: string | null; currency: string | null },
  request: { user_id: string; currency: string },
): boolean {
  return bet.user_id !== null && (bet.user_id !== request.user_id || bet.currency !== request.currency);
}

function sessionProblem(session: SessionFacts | undefined, userId: string, currency: string): ErrorCode | undefined {
  if (!session || !session.live) return 'SESSION_NOT_FOUND';
  if (session.user_id !== userId || session.currency !== currency) return 'WRONG_SESSION';
  return undefined;
}

interface RecordFields {
  kind: LedgerKind;
  tx_id: string;
  fingerprint: string;
  user_id: string;
  currency: string;
  amount: string;
  round_id: string;
  game_session_id: string;
  bet_tx_id: string;
  session_id: string;
  game_id: string;
  attempt_id: string;
}

/** user_id … game_id, in the column order both INSERTs use. */
function recordParams(record: RecordFields): unknown[] {
  return [
    record.user_id,
    record.currency,
    record.amount,
    record.round_id || null,
    record.game_session_id || null,
    record.bet_tx_id || null,
    record.session_id || null,
    record.game_id || null,
  ];
}

export type { MoneyKind };
