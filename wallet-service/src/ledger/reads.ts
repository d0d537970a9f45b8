/** Reads: a balance (one statement), a stored transaction, and the double-entry invariants. */
import { currencyDecimals, formatAmount, PhiaError, type ErrorCode } from '@phia/proto';
import { field, ledgerKind, unitsFromSql, type CallContext, type LedgerCore } from './core.js';

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

const TX_COLUMNS = `id::text, kind, tx_id, status, fingerprint, error_code, user_id, currency, amount::text,
  round_id, game_session_id, bet_tx_id, balance_after::text, refunded_amount::text, created_at::text, attempt_id,
  refused_fingerprint`;

interface BalanceFacts {
  balance: string | null;
  session_user_id: string | null;
  session_currency: string | null;
  session_live: boolean | null;
}

/** The balance and the session, read in one statement (one snapshot, one round trip). */
const BALANCE_STATEMENT = {
  name: 'phia_wallet_balance',
  text: `SELECT a.balance::text AS balance, s.user_id AS session_user_id, s.currency AS session_currency,
      (s.closed_at IS NULL AND s.expires_at > now()) AS session_live
    FROM (SELECT 1) AS one
    LEFT JOIN accounts a ON a.owner_kind = 'player' AND a.user_id = $1 AND a.currency = $2
    LEFT JOIN sessions s ON $3 <> '' AND s.session_id = $3`,
};

export async function getBalance(
  core: LedgerCore,
  input: { user_id: string; currency: string; session_id?: string },
  ctx: CallContext = {},
): Promise<{ balance: string; currency: string }> {
  const userId = field(input, 'user_id', true);
  const decimals = currencyDecimals(core.currencies, input.currency);
  const sessionId = field(input, 'session_id', false);
  // The precedence stays: a session problem first, then a missing account.
  core.ensureTimeLeft(ctx, 'before balance');
  let found: { rows: BalanceFacts[] };
  try {
    found = await core.db.query<BalanceFacts>(BALANCE_STATEMENT.text, [userId, input.currency, sessionId], {
      name: BALANCE_STATEMENT.name,
      ...(ctx.deadline === undefined ? {} : { connectWaitMs: core.timeLeftMs(ctx.deadline) }),
    });
  } catch (error) {
    throw core.databaseError(error, ctx, 'balance');
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

export async function getTransaction(
  core: LedgerCore,
  input: { kind: string; tx_id: string },
): Promise<TransactionRecord> {
  const kind = ledgerKind(input.kind);
  const txId = field(input, 'tx_id', true);
  const found = await core.db.query<TransactionRow>(
    `SELECT ${TX_COLUMNS} FROM transactions WHERE kind = $1 AND tx_id = $2`,
    [kind, txId],
  );
  const row = found.rows[0];
  if (!row) throw new PhiaError('ACCOUNT_NOT_FOUND', 'no such transaction');
  const decimals = row.currency ? (core.currencies.get(row.currency) ?? 0) : 0;
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
export async function checkBooks(core: LedgerCore): Promise<BooksReport> {
  const unbalanced = await core.db.query<{ currency: string; sum: string }>(
    `SELECT a.currency, sum(e.amount)::text AS sum FROM entries e JOIN accounts a ON a.id = e.account_id
     GROUP BY a.currency HAVING sum(e.amount) <> 0`,
  );
  const drifted = await core.db.query<{ user_id: string; currency: string; balance: string; entries: string }>(
    `SELECT a.user_id, a.currency, a.balance::text, coalesce(sum(e.amount), 0)::text AS entries
     FROM accounts a LEFT JOIN entries e ON e.account_id = a.id
     WHERE a.owner_kind = 'player' GROUP BY a.id HAVING a.balance <> coalesce(sum(e.amount), 0)`,
  );
  const negative = await core.db.query<{ user_id: string; currency: string; balance: string }>(
    `SELECT user_id, currency, balance::text FROM accounts WHERE owner_kind = 'player' AND balance < 0`,
  );
  return {
    unbalancedCurrencies: unbalanced.rows,
    driftedAccounts: drifted.rows,
    negativeAccounts: negative.rows,
  };
}

/** Player accounts below zero, counted: one pass over the accounts (never the entries), cheap to repeat. */
export async function countNegativeAccounts(core: LedgerCore): Promise<number> {
  const found = await core.db.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM accounts WHERE owner_kind = 'player' AND balance < 0`,
  );
  return found.rows[0]?.count ?? 0;
}

interface SessionFacts {
  user_id: string;
  currency: string;
  live: boolean;
}

function sessionProblem(session: SessionFacts | undefined, userId: string, currency: string): ErrorCode | undefined {
  if (!session || !session.live) return 'SESSION_NOT_FOUND';
  if (session.user_id !== userId || session.currency !== currency) return 'WRONG_SESSION';
  return undefined;
}

export interface AccountRecord {
  user_id: string;
  currency: string;
  balance: string;
  blocked: boolean;
  created_at: string;
  updated_at: string;
}

/** A player account, for operators. */
export async function getAccount(
  core: LedgerCore,
  input: { user_id: string; currency: string },
): Promise<AccountRecord> {
  const userId = field(input, 'user_id', true);
  const decimals = currencyDecimals(core.currencies, input.currency);
  const found = await core.db.query<{ balance: string; blocked: boolean; created_at: string; updated_at: string }>(
    `SELECT balance::text, blocked, created_at::text, updated_at::text FROM accounts
     WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2`,
    [userId, input.currency],
  );
  const row = found.rows[0];
  if (!row) throw new PhiaError('ACCOUNT_NOT_FOUND');
  return {
    user_id: userId,
    currency: input.currency,
    balance: formatAmount(unitsFromSql(row.balance, decimals), decimals),
    blocked: row.blocked,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

export interface EntryRecord {
  account: 'player' | 'house' | 'cashier';
  user_id: string;
  currency: string;
  amount: string;
  created_at: string;
}

/** The entries a transaction booked, in booking order (a void's reversal comes after them). */
export async function listEntries(core: LedgerCore, input: { kind: string; tx_id: string }): Promise<EntryRecord[]> {
  const kind = ledgerKind(input.kind);
  const txId = field(input, 'tx_id', true);
  const found = await core.db.query<{
    found: boolean;
    account: EntryRecord['account'] | null;
    user_id: string | null;
    currency: string | null;
    amount: string | null;
    created_at: string | null;
  }>(
    `SELECT true AS found, a.owner_kind AS account, a.user_id, a.currency, e.amount::text, e.created_at::text
     FROM transactions t LEFT JOIN entries e ON e.transaction_id = t.id LEFT JOIN accounts a ON a.id = e.account_id
     WHERE t.kind = $1 AND t.tx_id = $2 ORDER BY e.id`,
    [kind, txId],
  );
  if (found.rows.length === 0) throw new PhiaError('ACCOUNT_NOT_FOUND', 'no such transaction');
  return found.rows.flatMap((row) => {
    if (row.account === null || row.currency === null || row.amount === null || row.created_at === null) return [];
    const decimals = core.currencies.get(row.currency) ?? 0;
    return [
      {
        account: row.account,
        user_id: row.user_id ?? '',
        currency: row.currency,
        amount: signedAmount(unitsFromSql(row.amount, decimals), decimals),
        created_at: new Date(row.created_at).toISOString(),
      },
    ];
  });
}

function signedAmount(units: bigint, decimals: number): string {
  return units < 0n ? `-${formatAmount(-units, decimals)}` : formatAmount(units, decimals);
}
