-- Void: makes sure (kind, tx_id) never takes effect. Reverses it if applied, and replaces a decline
-- with the void's error, when the attempt this void speaks for decided it, or another one whose answer
-- never left (committed after p_unanswered_after_ms); tombstones it if never seen; idempotent. p_error_code is what the caller answered: a later duplicate
-- replays it. p_fingerprint names the request's content; p_refused names content a refusal refused
-- without claiming the key for it.
-- p_unanswered_after_ms is new: an overload, so a wallet of the previous version keeps its own.
CREATE OR REPLACE FUNCTION wallet_void(
  p_kind text, p_tx_id text, p_error_code text, p_fingerprint text, p_refused text, p_attempt_id text,
  p_unanswered_after_ms bigint, p_default_timeout_ms integer, p_commit_by_ms bigint,
  OUT out_outcome text, OUT out_currency text, OUT out_balance text, OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  peek transactions%ROWTYPE;
  account accounts%ROWTYPE;
  target transactions%ROWTYPE;
  -- The row is this attempt's to undo: decided by it, or by another whose answer never left.
  undoable boolean;
  ignored bigint;
BEGIN
  ignored := wallet_timeouts(p_default_timeout_ms, p_commit_by_ms);
  -- The account lock comes first, as for money requests; the row names the account.
  SELECT * INTO peek FROM transactions WHERE kind = p_kind AND tx_id = p_tx_id;
  IF peek.user_id IS NOT NULL AND peek.currency IS NOT NULL THEN
    SELECT * INTO account FROM accounts
    WHERE owner_kind = 'player' AND user_id = peek.user_id AND currency = peek.currency FOR UPDATE;
  END IF;
  SELECT * INTO target FROM transactions WHERE kind = p_kind AND tx_id = p_tx_id FOR UPDATE;
  out_currency := CASE WHEN account.id IS NULL THEN '' ELSE account.currency END;
  out_balance := account.balance::text;
  undoable := p_attempt_id IS NULL OR target.attempt_id IS NULL OR target.attempt_id = p_attempt_id
    OR coalesce(target.created_at > to_timestamp(p_unanswered_after_ms / 1000.0), false);

  IF target.id IS NULL THEN
    INSERT INTO transactions (kind, tx_id, status, error_code, fingerprint, refused_fingerprint)
    VALUES (p_kind, p_tx_id, 'voided', p_error_code, p_fingerprint, p_refused);
    out_outcome := 'tombstoned';
  ELSIF target.user_id IS DISTINCT FROM peek.user_id OR target.currency IS DISTINCT FROM peek.currency THEN
    -- Claimed by a request between the peek and the lock: run again, locking its account.
    RAISE EXCEPTION 'void raced a request' USING ERRCODE = 'serialization_failure';
  ELSIF p_fingerprint IS NOT NULL AND target.fingerprint IS NOT NULL AND target.fingerprint <> p_fingerprint THEN
    out_outcome := 'not_matching';
  ELSIF target.status = 'voided' THEN
    -- A refusal's tombstone claims no content (the gateway refused without knowing the key's owner).
    -- A void that names its content speaks for a request answered with this error: the row becomes
    -- that request's, so its copies replay its error and other content is a mismatch.
    IF p_fingerprint IS NOT NULL AND target.fingerprint IS NULL THEN
      UPDATE transactions SET fingerprint = p_fingerprint, error_code = p_error_code, updated_at = now()
      WHERE id = target.id;
    END IF;
    out_outcome := 'already_voided';
  ELSIF target.status = 'applied' AND NOT undoable THEN
    -- Applied by another attempt that may have been answered 200: undoing it would break that answer;
    -- the attempt this void speaks for never applied anything. Past the horizon, no 200 left for it.
    out_outcome := 'kept';
  ELSIF target.status = 'tombstone' THEN
    -- A refund's tombstone of a bet never seen, and the bet itself was answered with an error: that
    -- error (not BET_REFUNDED) is what copies of the bet must get, and the row is now that content's
    -- (as a request meeting the tombstone claims it), so other content is a mismatch.
    IF target.fingerprint IS NULL AND target.error_code IS NULL THEN
      UPDATE transactions SET error_code = p_error_code, fingerprint = p_fingerprint, refused_fingerprint = p_refused,
        updated_at = now()
      WHERE id = target.id;
    END IF;
    out_outcome := 'tombstoned';
  ELSIF target.status = 'declined' THEN
    -- A decline whose answer never reached the caller (this very attempt's, or another's past the
    -- horizon), who answered the error instead: that error is what PHIA got, so copies must replay it.
    -- A refund's tombstone stays one (so the bet's win is still refused), now with the error.
    IF p_attempt_id IS NOT NULL AND target.attempt_id IS NOT NULL AND undoable THEN
      UPDATE transactions SET error_code = p_error_code, updated_at = now(),
        status = CASE WHEN target.error_code = 'BET_REFUNDED' THEN 'tombstone' ELSE 'voided' END
      WHERE id = target.id;
      out_outcome := 'decline_replaced';
    ELSE
      out_outcome := 'declined';
    END IF;
  ELSIF account.id IS NULL THEN
    PERFORM wallet_refuse('ACCOUNT_NOT_FOUND');
  ELSE
    out_balance := wallet_reverse(target, account, p_error_code)::text;
    out_outcome := 'reversed';
  END IF;
  -- The error the row now answers ('' for none): the caller keeps its own answer only if they agree.
  SELECT coalesce(t.error_code, '') INTO out_error FROM transactions t WHERE t.kind = p_kind AND t.tx_id = p_tx_id;
  IF wallet_late(p_commit_by_ms) THEN
    RAISE EXCEPTION 'deadline passed before commit' USING ERRCODE = 'PH002';
  END IF;
END $$;

-- Writes the reverse movement of an applied request against the same counter account; returns the
-- player's balance after it.
CREATE OR REPLACE FUNCTION wallet_reverse(p_row transactions, p_account accounts, p_error_code text)
RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
  delta numeric;
  ignored integer;
BEGIN
  IF p_row.kind = 'bet' THEN
    delta := p_row.amount - p_row.refunded_amount;
  ELSIF p_row.kind = 'withdraw' THEN
    delta := p_row.amount;
  ELSIF p_row.kind = 'refund' THEN
    -- A voided bet gave back only its unrefunded part: the refunded part is no longer the player's to
    -- return, so only allocations to bets still applied are taken back.
    SELECT -coalesce(sum(a.amount), 0) INTO delta FROM refund_allocations a
    JOIN transactions b ON b.id = a.bet_transaction_id AND b.status = 'applied'
    WHERE a.refund_transaction_id = p_row.id;
  ELSE
    delta := -p_row.amount;
  END IF;
  -- A credit already spent, or (only a debit's reversal meeting credits paid since) a balance that
  -- would pass its limit: refused for now; the caller retries, and the account stays usable meanwhile.
  IF p_account.balance + delta < 0 THEN
    PERFORM wallet_refuse('INSUFFICIENT_FUNDS', 'cannot reverse: balance already spent');
  END IF;
  IF NOT wallet_balance_fits(p_account.balance + delta) THEN
    PERFORM wallet_refuse('INVALID_REQUEST', 'cannot reverse: the balance would pass its limit');
  END IF;
  IF p_row.kind = 'refund' THEN
    UPDATE transactions b SET refunded_amount = b.refunded_amount - a.amount, updated_at = now()
    FROM refund_allocations a
    WHERE a.refund_transaction_id = p_row.id AND b.id = a.bet_transaction_id AND b.status = 'applied';
  END IF;
  ignored := wallet_book(p_row.id, p_account.id,
    wallet_counter_account(CASE WHEN p_row.kind IN ('deposit', 'withdraw') THEN 'cashier' ELSE 'house' END,
      p_row.currency),
    delta);
  UPDATE transactions SET status = 'voided', error_code = p_error_code, updated_at = now() WHERE id = p_row.id;
  RETURN p_account.balance + delta;
END $$;
