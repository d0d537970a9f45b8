/** Sessions (open, close) and an account's blocked flag. */
import { randomBytes } from 'node:crypto';
import { currencyDecimals, PhiaError } from '@phia/proto';
import { field, type CallContext, type LedgerCore } from './core.js';

export async function openSession(
  core: LedgerCore,
  input: { user_id: string; currency: string; ttl_seconds?: number },
  ctx: CallContext = {},
): Promise<{ session_id: string; expires_at: string }> {
  const userId = field(input, 'user_id', true);
  currencyDecimals(core.currencies, input.currency);
  const ttl = input.ttl_seconds && input.ttl_seconds > 0 ? input.ttl_seconds : core.defaultSessionTtlSeconds;
  if (!Number.isInteger(ttl) || ttl > core.maxSessionTtlSeconds) {
    throw new PhiaError('INVALID_REQUEST', `ttl_seconds must be at most ${core.maxSessionTtlSeconds}`);
  }
  const sessionId = randomBytes(24).toString('base64url');
  return core.run(ctx, 'open_session', async (tx) => {
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

export async function closeSession(
  core: LedgerCore,
  input: { session_id: string },
  ctx: CallContext = {},
): Promise<void> {
  const sessionId = field(input, 'session_id', true);
  await core.run(ctx, 'close_session', async (tx) => {
    const closed = await tx.query(
      `UPDATE sessions SET closed_at = coalesce(closed_at, now()) WHERE session_id = $1 RETURNING 1`,
      [sessionId],
    );
    if (closed.rows.length === 0) throw new PhiaError('SESSION_NOT_FOUND');
  });
}

export async function setAccountStatus(
  core: LedgerCore,
  input: { user_id: string; currency: string; blocked: boolean },
  ctx: CallContext = {},
): Promise<{ user_id: string; currency: string; blocked: boolean }> {
  const userId = field(input, 'user_id', true);
  currencyDecimals(core.currencies, input.currency);
  return core.run(ctx, 'set_account_status', async (tx) => {
    const updated = await tx.query<{ blocked: boolean }>(
      `UPDATE accounts SET blocked = $3, updated_at = now()
       WHERE owner_kind = 'player' AND user_id = $1 AND currency = $2 RETURNING blocked`,
      [userId, input.currency, input.blocked === true],
    );
    if (updated.rows.length === 0) throw new PhiaError('ACCOUNT_NOT_FOUND');
    return { user_id: userId, currency: input.currency, blocked: updated.rows[0]?.blocked === true };
  });
}
