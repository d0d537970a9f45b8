/** The balance request: one wallet read, answered with the currency's decimals; nothing to store. */
import { currencyDecimals, type CurrencyTable } from '@phia/proto';
import type { FastifyBaseLogger } from 'fastify';
import type { WalletClient } from '../wallet-client/client.js';
import {
  codeOf,
  errorToAnswer,
  logWalletError,
  okAnswer,
  optional,
  walletBalance,
  type Answer,
  type BalanceBodyT,
} from './contract.js';

export async function balanceAnswer(
  o: { wallet: WalletClient; currencies: CurrencyTable },
  body: BalanceBodyT,
  ctx: { requestId: string; log: FastifyBaseLogger; arrivedAt?: number | undefined },
): Promise<Answer> {
  const decimals = currencyDecimals(o.currencies, body.currency);
  try {
    const sessionId = optional(body.session_id);
    const reply = await o.wallet.getBalance(
      { user_id: body.user_id, currency: body.currency, ...(sessionId === undefined ? {} : { session_id: sessionId }) },
      { requestId: ctx.requestId, arrivedAt: ctx.arrivedAt },
    );
    return okAnswer({ balance: walletBalance(reply.balance, decimals), currency: body.currency });
  } catch (error) {
    logWalletError(error, ctx, 'balance');
    return errorToAnswer(codeOf(error));
  }
}
