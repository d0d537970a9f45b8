/**
 * The ledger: every money rule of the contract (section 6). Money requests and voids are PL/pgSQL
 * functions (wallet-service/sql/functions), each called as one statement that is its own transaction:
 * it locks the player's account row first (all requests of one account are serialized, in one lock
 * order), decides, stores the outcome row and the balanced entries, and commits before anyone is
 * answered. Declines are stored as well as successes, so a duplicate always gets the first answer
 * back, also after a restart. This class is the entry point; each concern lives in its own module.
 */
import type { MoneyKind } from '@phia/proto';
import type { Database } from '../db/database.js';
import { LedgerCore, type CallContext, type LedgerOptions } from './core.js';
import { moneyRequest, type MoneyAnswer, type MoneyInput } from './money.js';
import {
  checkBooks,
  countNegativeAccounts,
  getAccount,
  getBalance,
  getTransaction,
  listEntries,
  type AccountRecord,
  type BooksReport,
  type EntryRecord,
  type TransactionRecord,
} from './reads.js';
import { closeSession, openSession, setAccountStatus } from './sessions.js';
import { voidTransaction, type VoidAnswer, type VoidInput } from './voids.js';

export type { CallContext, LedgerHooks, LedgerOptions } from './core.js';
export type { MoneyAnswer, MoneyInput } from './money.js';
export type { AccountRecord, BooksReport, EntryRecord, TransactionRecord } from './reads.js';
export type { VoidAnswer, VoidInput, VoidOutcome } from './voids.js';
export type { MoneyKind };

export class Ledger {
  private readonly core: LedgerCore;

  constructor(db: Database, options: LedgerOptions) {
    this.core = new LedgerCore(db, options);
  }

  getBalance(
    input: { user_id: string; currency: string; session_id?: string },
    ctx: CallContext = {},
  ): Promise<{ balance: string; currency: string }> {
    return getBalance(this.core, input, ctx);
  }

  getTransaction(input: { kind: string; tx_id: string }): Promise<TransactionRecord> {
    return getTransaction(this.core, input);
  }

  /** The double-entry invariants; tests and the chaos harness assert all three lists are empty. */
  checkBooks(): Promise<BooksReport> {
    return checkBooks(this.core);
  }

  /** Player accounts below zero: the cheap part of the books check, for a periodic gauge. */
  countNegativeAccounts(): Promise<number> {
    return countNegativeAccounts(this.core);
  }

  getAccount(input: { user_id: string; currency: string }): Promise<AccountRecord> {
    return getAccount(this.core, input);
  }

  listEntries(input: { kind: string; tx_id: string }): Promise<EntryRecord[]> {
    return listEntries(this.core, input);
  }

  bet(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return moneyRequest(this.core, 'bet', input, ctx);
  }

  win(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return moneyRequest(this.core, 'win', input, ctx);
  }

  refund(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return moneyRequest(this.core, 'refund', input, ctx);
  }

  deposit(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return moneyRequest(this.core, 'deposit', input, ctx);
  }

  withdraw(input: MoneyInput, ctx: CallContext = {}): Promise<MoneyAnswer> {
    return moneyRequest(this.core, 'withdraw', input, ctx);
  }

  /** Makes sure (kind, tx_id) never takes effect: reversed if applied, tombstoned if never seen. */
  voidTransaction(input: VoidInput, ctx: CallContext = {}): Promise<VoidAnswer> {
    return voidTransaction(this.core, input, ctx);
  }

  openSession(
    input: { user_id: string; currency: string; ttl_seconds?: number },
    ctx: CallContext = {},
  ): Promise<{ session_id: string; expires_at: string }> {
    return openSession(this.core, input, ctx);
  }

  closeSession(input: { session_id: string }, ctx: CallContext = {}): Promise<void> {
    return closeSession(this.core, input, ctx);
  }

  setAccountStatus(
    input: { user_id: string; currency: string; blocked: boolean },
    ctx: CallContext = {},
  ): Promise<{ user_id: string; currency: string; blocked: boolean }> {
    return setAccountStatus(this.core, input, ctx);
  }
}
