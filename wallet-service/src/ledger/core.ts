/**
 * The ledger's plumbing: options, field checks, and how a call reaches the database under the caller's
 * deadline (one statement, or one transaction), with deadlock and serialization retries.
 */
import { parseBalance, PhiaError, type CurrencyTable, type ErrorCode, type LedgerKind } from '@phia/proto';
import { isErrorCode } from '@phia/proto';
import { isConnectionFailure, isPoolTimeout, sqlState, type Database, type Queryable } from '../db/database.js';
import { AccountGate, type BatchRunner } from './account-gate.js';
import { Flights } from './flights.js';
import { DatabaseUnavailableError, DeadlineExceededError } from './errors.js';

export interface CallContext {
  /** Absolute deadline (epoch ms) of the caller; undefined: no deadline. */
  deadline?: number | undefined;
}

export interface LedgerHooks {
  /**
   * Runs right before COMMIT (tests inject delays and gates here). With a hook a call's function runs
   * inside BEGIN … COMMIT so the hook has a moment to run in: two more round trips, tests only.
   */
  beforeCommit?: (operation: string) => Promise<void>;
}

export interface LedgerOptions {
  currencies: CurrencyTable;
  /** Stop before COMMIT when less than this is left of the caller's deadline. */
  commitMarginMs?: number;
  /** statement_timeout and lock_timeout for calls that carry no deadline. */
  defaultStatementTimeoutMs?: number;
  defaultSessionTtlSeconds?: number;
  maxSessionTtlSeconds?: number;
  hooks?: LedgerHooks;
}

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

/** Deadlock, serialization failure, and a unique key won by a concurrent writer: run the call again. */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01', '23505']);
const TIMEOUT_SQLSTATES = new Set(['57014', '55P03']);
/** Raised by the ledger's functions: a refusal that stored nothing; the deadline passed. */
const REFUSED_SQLSTATE = 'PH001';
const DEADLINE_SQLSTATE = 'PH002';
const MAX_ATTEMPTS = 4;
/** The most waiting calls of one account that leave the account gate together. */
export const MAX_BATCH = 32;
/** Money statements in flight at once; calls that come while all are out share the next one. */
export const MONEY_FLIGHTS = 4;
/** The most calls one money statement carries. */
export const MAX_FLIGHT_CALLS = 64;

/**
 * A named prepared statement calling one of the ledger's functions; `batch` calls it for several
 * requests at once, taking each parameter as an array (one element per request, in order) and
 * returning one row per request, in order.
 */
export interface LedgerStatement {
  name: string;
  text: string;
  batch?: { name: string; text: string };
}

interface GatedCall {
  account: string;
  ctx: CallContext;
  operation: string;
  statement: LedgerStatement;
  args: (defaultTimeoutMs: number, commitBy: number | null) => unknown[];
}

/** Text of a field, checked against its limit; '' when optional and absent. */
export function field(input: object, name: keyof typeof FIELD_LIMITS, required: boolean): string {
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
export function unitsFromSql(text: string, decimals: number): bigint {
  const negative = text.startsWith('-');
  const units = parseBalance(negative ? text.slice(1) : text, decimals);
  return negative ? -units : units;
}

export function ledgerKind(kind: string): LedgerKind {
  if (kind === 'bet' || kind === 'win' || kind === 'refund' || kind === 'deposit' || kind === 'withdraw') return kind;
  throw new PhiaError('INVALID_REQUEST', 'kind must be bet, win, refund, deposit or withdraw');
}

/** A stored error code as the contract's (INTERNAL for anything else). */
export function contractCode(code: string | null | undefined): ErrorCode {
  return isErrorCode(code) ? (code as ErrorCode) : 'INTERNAL';
}

export class LedgerCore {
  readonly currencies: CurrencyTable;
  readonly defaultSessionTtlSeconds: number;
  readonly maxSessionTtlSeconds: number;
  private readonly commitMarginMs: number;
  private readonly defaultStatementTimeoutMs: number;
  private readonly hooks: LedgerHooks;
  private readonly accountGate = new AccountGate();

  constructor(
    readonly db: Database,
    options: LedgerOptions,
  ) {
    this.currencies = options.currencies;
    this.commitMarginMs = options.commitMarginMs ?? 50;
    this.defaultStatementTimeoutMs = options.defaultStatementTimeoutMs ?? 10_000;
    this.defaultSessionTtlSeconds = options.defaultSessionTtlSeconds ?? 3600;
    this.maxSessionTtlSeconds = options.maxSessionTtlSeconds ?? 7 * 24 * 3600;
    this.hooks = options.hooks ?? {};
  }

  /**
   * Calls one of the ledger's functions as one named prepared statement in autocommit: its own
   * transaction, one round trip. The function sets its timeouts from `commitBy` and, as its last step,
   * raises if `commitBy` has passed, so nothing commits after the caller's deadline (less the margin).
   * `args(timeoutMs, commitBy)` builds the parameters; they end with those two. With `account` (the
   * player account the call locks first), it waits its turn in the account gate; with `statement.batch`
   * as well, it goes through the money flights (flights.ts): calls that waited together, at the gate or
   * for a flight, run as one call of the batch statement.
   */
  async callFunction<R>(
    ctx: CallContext,
    operation: string,
    statement: LedgerStatement,
    args: (defaultTimeoutMs: number, commitBy: number | null) => unknown[],
    account?: string,
  ): Promise<R> {
    if (account === undefined) return this.callWithRetries(ctx, operation, statement, args);
    const waitUntil = ctx.deadline === undefined ? undefined : ctx.deadline - this.commitMarginMs;
    if (statement.batch === undefined || this.hooks.beforeCommit) {
      return this.accountGate.run(account, waitUntil, () => this.callWithRetries(ctx, operation, statement, args));
    }
    const call: GatedCall = { ctx, operation, statement, args, account };
    return this.accountGate.runBatched(account, waitUntil, call, this.batchRunner) as Promise<R>;
  }

  private readonly flights = new Flights<GatedCall>({
    limit: MONEY_FLIGHTS,
    maxCalls: MAX_FLIGHT_CALLS,
    key: (call) => call.account,
    refusal: (call) => {
      try {
        this.ensureTimeLeft(call.ctx, `before ${call.operation}`);
        return undefined;
      } catch (error) {
        return error;
      }
    },
    alone: (call) => this.callWithRetries(call.ctx, call.operation, call.statement, call.args),
    together: (calls) => this.callTogether(calls),
  });

  private readonly batchRunner: BatchRunner<GatedCall, unknown> = {
    max: MAX_BATCH,
    run: (calls) => this.flights.carry(calls),
  };

  /**
   * Calls as one call of their statement's batch form: it runs each call's function in turn in one
   * transaction and checks the earliest deadline last. Rejects when anything failed (then nothing
   * committed). The flights have just refused the calls with no time left (`refusal`).
   */
  private async callTogether(calls: readonly GatedCall[]): Promise<unknown[]> {
    const batch = (calls[0] as GatedCall).statement.batch as { name: string; text: string };
    let connectBy = Infinity;
    const params = calls.map((call) => {
      const commitBy = call.ctx.deadline === undefined ? null : call.ctx.deadline - this.commitMarginMs;
      if (commitBy !== null) connectBy = Math.min(connectBy, commitBy);
      return call.args(this.defaultStatementTimeoutMs, commitBy);
    });
    const columns = (params[0] as unknown[]).map((_, k) => params.map((row) => row[k]));
    const found = await this.db.query(batch.text, columns, {
      name: batch.name,
      ...(connectBy === Infinity ? {} : { connectWaitMs: connectBy - Date.now() }),
    });
    if (found.rows.length !== calls.length) throw new Error(`${found.rows.length} rows for ${calls.length} calls`);
    return found.rows;
  }

  private async callWithRetries<R>(
    ctx: CallContext,
    operation: string,
    statement: LedgerStatement,
    args: (defaultTimeoutMs: number, commitBy: number | null) => unknown[],
  ): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      this.ensureTimeLeft(ctx, `before ${operation}`);
      const commitBy = ctx.deadline === undefined ? null : ctx.deadline - this.commitMarginMs;
      const params = args(this.defaultStatementTimeoutMs, commitBy);
      try {
        if (this.hooks.beforeCommit) {
          return await this.transaction(ctx, operation, async (tx) => {
            const found = await tx.query<R>(statement.text, params);
            return found.rows[0] as R;
          });
        }
        const found = await this.db.query<R>(statement.text, params, {
          name: statement.name,
          ...(commitBy === null ? {} : { connectWaitMs: commitBy - Date.now() }),
        });
        return found.rows[0] as R;
      } catch (error) {
        if (this.retryable(error) && attempt < MAX_ATTEMPTS) continue;
        throw this.databaseError(error, ctx, operation);
      }
    }
  }

  /**
   * Runs one database transaction under the caller's deadline (calls that are not money requests):
   * timeouts follow the time left, and it rolls back instead of committing when the deadline has
   * passed or is too close.
   */
  async run<T>(ctx: CallContext, operation: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.ensureTimeLeft(ctx, `before ${operation}`);
      try {
        return await this.transaction(ctx, operation, fn);
      } catch (error) {
        if (this.retryable(error) && attempt < MAX_ATTEMPTS) continue;
        throw this.databaseError(error, ctx, operation);
      }
    }
  }

  private transaction<T>(ctx: CallContext, operation: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const deadline = ctx.deadline;
    return this.db.transaction(
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
  }

  private retryable(error: unknown): boolean {
    if (error instanceof PhiaError || error instanceof DeadlineExceededError) return false;
    const state = sqlState(error);
    return state !== undefined && RETRYABLE_SQLSTATES.has(state);
  }

  /**
   * A database failure as the error the wallet answers: a function's refusal → PhiaError; timeouts
   * (statement, lock, the function's deadline check, or the wait for a pool connection under a
   * deadline) → DeadlineExceededError (WALLET_TIMEOUT); a lost connection, or no pool connection
   * without a deadline → DatabaseUnavailableError (WALLET_UNAVAILABLE); else as is.
   */
  databaseError(error: unknown, ctx: CallContext, operation: string): unknown {
    if (error instanceof PhiaError || error instanceof DeadlineExceededError) return error;
    const state = sqlState(error);
    if (state === REFUSED_SQLSTATE) {
      const { message, detail } = error as { message: string; detail?: string };
      return new PhiaError(contractCode(message), detail || undefined);
    }
    if (state === DEADLINE_SQLSTATE) return new DeadlineExceededError(`${operation}: ${(error as Error).message}`);
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

  /** What is left of a deadline for waiting, less the margin kept for the commit. */
  timeLeftMs(deadline: number): number {
    return deadline - Date.now() - this.commitMarginMs;
  }

  ensureTimeLeft(ctx: CallContext, moment: string): void {
    if (ctx.deadline !== undefined && ctx.deadline - Date.now() < this.commitMarginMs) {
      throw new DeadlineExceededError(moment);
    }
  }
}
