/**
 * After the run: do the books still balance, and did every answer hold? Uses the wallet's own
 * Ledger.checkBooks (entries sum to zero per currency, each player's balance equals the sum of its
 * entries, no negative balance), plus, per phase, that exactly the requests answered 200 took effect
 * (an error answer is final: contract rule 5).
 */
import { buildCurrencyTable } from '@phia/proto';
import { Ledger, openDatabase, type BooksReport, type Database } from '@phia/wallet-service';
import type { Outcomes } from './phia.js';

export interface PhaseConsistency {
  tag: string;
  kind: 'bet' | 'win' | 'refund';
  answered200: number;
  answeredError: number;
  unanswered: number;
  /** Rows of the phase that took effect (status applied). */
  applied: number;
  /** Answered 200 but not applied. */
  okNotApplied: number;
  /** Answered with an error but applied anyway (rule 5 broken). */
  errorButApplied: number;
  ok: boolean;
}

export interface BooksCheck {
  books: BooksReport;
  booksOk: boolean;
  phases: PhaseConsistency[];
  phasesOk: boolean;
  counts: { transactions: number; entries: number; playerAccounts: number };
}

export async function openLedger(databaseUrl: string, schema: string): Promise<{ ledger: Ledger; db: Database }> {
  const db = await openDatabase({ databaseUrl, schema, poolSize: 2 });
  return { ledger: new Ledger(db, { currencies: buildCurrencyTable() }), db };
}

export async function checkBooks(
  databaseUrl: string,
  schema: string,
  phases: { tag: string; kind: 'bet' | 'win' | 'refund'; outcomes: Outcomes }[],
): Promise<BooksCheck> {
  const { ledger, db } = await openLedger(databaseUrl, schema);
  try {
    const books = await ledger.checkBooks();
    const booksOk =
      books.unbalancedCurrencies.length === 0 &&
      books.driftedAccounts.length === 0 &&
      books.negativeAccounts.length === 0;
    const results: PhaseConsistency[] = [];
    for (const { tag, kind, outcomes } of phases) {
      const like = `${tag.replace(/[\\%_]/g, (c) => `\\${c}`)}-%`;
      const applied = await db.query<{ tx_id: string }>(
        `SELECT tx_id FROM transactions WHERE kind = $1 AND tx_id LIKE $2 AND status = 'applied'`,
        [kind, like],
      );
      const appliedIds = new Set(applied.rows.map((row) => row.tx_id));
      let okNotApplied = 0;
      for (const txId of outcomes.ok) if (!appliedIds.has(txId)) okNotApplied++;
      let errorButApplied = 0;
      for (const txId of outcomes.failed.keys()) if (appliedIds.has(txId)) errorButApplied++;
      results.push({
        tag,
        kind,
        answered200: outcomes.ok.length,
        answeredError: outcomes.failed.size,
        unanswered: outcomes.pending.size,
        applied: appliedIds.size,
        okNotApplied,
        errorButApplied,
        ok: okNotApplied === 0 && errorButApplied === 0,
      });
    }
    const counts = await db.query<{ transactions: string; entries: string; players: string }>(
      `SELECT (SELECT count(*) FROM transactions)::text AS transactions, (SELECT count(*) FROM entries)::text AS entries,
              (SELECT count(*) FROM accounts WHERE owner_kind = 'player')::text AS players`,
    );
    const row = counts.rows[0];
    return {
      books,
      booksOk,
      phases: results,
      phasesOk: results.every((phase) => phase.ok),
      counts: {
        transactions: Number(row?.transactions ?? 0),
        entries: Number(row?.entries ?? 0),
        playerAccounts: Number(row?.players ?? 0),
      },
    };
  } finally {
    await db.close();
  }
}
