/** Void: undoes what a request applied, or makes sure it never applies (sql/functions/40_void.sql). */
import { formatAmount, isErrorCode, PhiaError, type ErrorCode, type LedgerKind } from '@phia/proto';
import { field, ledgerKind, unitsFromSql, type CallContext, type LedgerCore } from './core.js';

export type VoidOutcome =
  'reversed' | 'tombstoned' | 'already_voided' | 'declined' | 'decline_replaced' | 'not_matching' | 'kept';

export interface VoidAnswer {
  kind: LedgerKind;
  tx_id: string;
  outcome: VoidOutcome;
  balance: string;
  currency: string;
  /** The error the row answers after the void ('' for none: applied, or a tombstone without one). */
  error_code: string;
}

export interface VoidInput {
  kind: string;
  tx_id: string;
  /** The error the caller answered; a later duplicate replays it (default WALLET_TIMEOUT). */
  error_code?: string;
  /** The fingerprint of the request this void speaks for; it touches no other content. */
  fingerprint?: string;
  /** The attempt answered with the error: only what that attempt applied is undone. */
  attempt_id?: string;
  /** A refusal names the content it refused without claiming the key for it. */
  refusal?: boolean;
  /** Epoch ms: another attempt's outcome committed after it was never answered, and is undone. */
  unanswered_after_ms?: string | number;
}

const VOID_STATEMENT = {
  name: 'phia_wallet_void',
  text: `SELECT out_outcome, out_currency, out_balance, out_error
    FROM wallet_void($1, $2, $3, $4, $5, $6, $7::bigint, $8::integer, $9::bigint)`,
};

/**
 * Makes sure (kind, tx_id) never takes effect: reverses it if applied, tombstones it if never seen.
 * Idempotent.
 */
export async function voidTransaction(core: LedgerCore, input: VoidInput, ctx: CallContext): Promise<VoidAnswer> {
  const named = typeof input.fingerprint === 'string' && input.fingerprint !== '' ? input.fingerprint : null;
  const refused = input.refusal === true ? named : null;
  const fingerprint = input.refusal === true ? null : named;
  const attemptId = field(input, 'attempt_id', false);
  const kind = ledgerKind(input.kind);
  const txId = field(input, 'tx_id', true);
  const horizon = unansweredAfter(input.unanswered_after_ms);
  const errorCode: ErrorCode = isErrorCode(input.error_code) ? (input.error_code as ErrorCode) : 'WALLET_TIMEOUT';

  const outcome = await core.callFunction<{
    out_outcome: VoidOutcome;
    out_currency: string;
    out_balance: string | null;
    out_error: string | null;
  }>(ctx, 'void', VOID_STATEMENT, (timeoutMs, commitBy) => [
    kind,
    txId,
    errorCode,
    fingerprint,
    refused,
    attemptId || null,
    horizon,
    timeoutMs,
    commitBy,
  ]);
  const decimals = core.currencies.get(outcome.out_currency) ?? 0;
  return {
    kind,
    tx_id: txId,
    outcome: outcome.out_outcome,
    currency: outcome.out_currency,
    balance: outcome.out_balance === null ? '' : formatAmount(unitsFromSql(outcome.out_balance, decimals), decimals),
    error_code: outcome.out_error ?? '',
  };
}

/** The horizon as SQL takes it: null when absent or 0 (every other attempt's application is kept). */
function unansweredAfter(value: string | number | undefined): string | null {
  const text = String(value ?? '0');
  if (!/^\d{1,16}$/.test(text)) throw new PhiaError('INVALID_REQUEST', 'unanswered_after_ms must be epoch ms');
  return text === '0' ? null : text;
}
