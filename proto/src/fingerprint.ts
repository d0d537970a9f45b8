import { createHash } from 'node:crypto';

/** The business fields that make two money requests "the same request" for idempotency. */
export interface MoneyFingerprintFields {
  user_id: string;
  currency: string;
  /** Normalized to the currency's decimals, so "10" and "10.00" are the same amount. */
  amount: string;
  round_id: string;
  game_session_id: string;
  bet_tx_id: string;
}

/**
 * A stable hash of a money request's business fields. Session token and game id are left out on
 * purpose: they do not change what the request does to the money.
 */
export function moneyFingerprint(kind: string, fields: MoneyFingerprintFields): string {
  const canonical = JSON.stringify([
    kind,
    fields.user_id,
    fields.currency,
    fields.amount,
    fields.round_id,
    fields.game_session_id,
    fields.bet_tx_id,
  ]);
  return createHash('sha256').update(canonical).digest('base64url');
}
