/**
 * Money requests (bet, win, refund, deposit, withdraw): checked and fingerprinted here, decided by
 * the wallet_money function (sql/functions/20_money.sql) in one round trip.
 */
import { currencyDecimals, formatAmount, moneyFingerprint, parseAmount, PhiaError, type LedgerKind } from '@phia/proto';
import { contractCode, field, unitsFromSql, type CallContext, type LedgerCore, type LedgerStatement } from './core.js';

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

const MONEY_STATEMENT: LedgerStatement = {
  name: 'phia_wallet_money',
  text: `SELECT out_status, out_code, out_balance
    FROM wallet_money($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9, $10, $11, $12, $13::integer, $14::bigint)`,
  batch: {
    name: 'phia_wallet_money_batch',
    text: `SELECT out_status, out_code, out_balance
    FROM wallet_money_batch($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[], $7::text[],
      $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::integer[], $14::bigint[])
    ORDER BY out_index`,
  },
};

export async function moneyRequest(
  core: LedgerCore,
  kind: LedgerKind,
  input: MoneyInput,
  ctx: CallContext,
): Promise<MoneyAnswer> {
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
  const decimals = currencyDecimals(core.currencies, request.currency);
  if (typeof input.amount !== 'string') throw new PhiaError('INVALID_REQUEST', 'amount must be a decimal string');
  const amount = formatAmount(parseAmount(input.amount, decimals), decimals);
  const fingerprint = moneyFingerprint(kind, { ...request, amount });

  const outcome = await core.callFunction<{ out_status: string; out_code: string | null; out_balance: string | null }>(
    ctx,
    kind,
    MONEY_STATEMENT,
    (timeoutMs, commitBy) => [
      kind,
      request.tx_id,
      request.user_id,
      request.currency,
      amount,
      request.round_id || null,
      request.game_session_id || null,
      request.bet_tx_id || null,
      request.session_id || null,
      request.game_id || null,
      request.attempt_id || null,
      fingerprint,
      timeoutMs,
      commitBy,
    ],
    `${request.currency}\u0000${request.user_id}`,
  );
  if (outcome.out_status !== 'applied') throw new PhiaError(contractCode(outcome.out_code));
  return {
    balance: formatAmount(unitsFromSql(outcome.out_balance ?? '0', decimals), decimals),
    currency: request.currency,
    tx_id: request.tx_id,
  };
}
