-- The bets a refund reverses, locked: the one it names (bet_tx_id), else its round's, oldest first.
CREATE OR REPLACE FUNCTION wallet_refund_bets(p_account accounts, p_round_id text, p_game_session_id text,
  p_bet_tx_id text) RETURNS SETOF transactions
LANGUAGE plpgsql AS $$
BEGIN
  IF p_bet_tx_id IS NOT NULL THEN
    RETURN QUERY SELECT * FROM transactions WHERE kind = 'bet' AND tx_id = p_bet_tx_id FOR UPDATE;
  ELSE
    RETURN QUERY SELECT * FROM transactions WHERE kind = 'bet' AND user_id = p_account.user_id
      AND currency = p_account.currency AND game_session_id = p_game_session_id AND round_id = p_round_id
      ORDER BY id FOR UPDATE;
  END IF;
END $$;

-- What a refund does: refused (code), or moves delta (0 when there is nothing to reverse). A refund
-- that finds no bet at all leaves a tombstone, so that bet (or any bet of that round) never applies.
CREATE OR REPLACE FUNCTION wallet_refund_decide(p_account accounts, p_tx_id text, p_amount numeric,
  p_round_id text, p_game_session_id text, p_bet_tx_id text, OUT code text, OUT delta numeric)
LANGUAGE plpgsql AS $$
DECLARE
  bets integer;
  applied integer;
  refundable numeric;
  of_another boolean;
BEGIN
  SELECT count(*), count(*) FILTER (WHERE b.status = 'applied'),
    coalesce(sum(b.amount - b.refunded_amount) FILTER (WHERE b.status = 'applied'), 0),
    coalesce(bool_or(b.user_id IS NOT NULL
      AND (b.user_id <> p_account.user_id OR b.currency IS DISTINCT FROM p_account.currency)), false)
  INTO bets, applied, refundable, of_another
  FROM wallet_refund_bets(p_account, p_round_id, p_game_session_id, p_bet_tx_id) b;
  delta := 0;
  IF of_another THEN
    code := 'INVALID_REQUEST';
  ELSIF applied = 0 THEN
    IF bets = 0 AND p_bet_tx_id IS NOT NULL THEN
      INSERT INTO transactions (kind, tx_id, status, user_id, currency, round_id, game_session_id)
      VALUES ('bet', p_bet_tx_id, 'tombstone', p_account.user_id, p_account.currency, p_round_id, p_game_session_id);
    ELSIF bets = 0 THEN
      INSERT INTO round_tombstones (user_id, currency, game_session_id, round_id, refund_tx_id)
      VALUES (p_account.user_id, p_account.currency, p_game_session_id, p_round_id, p_tx_id) ON CONFLICT DO NOTHING;
    END IF;
  ELSIF p_amount > refundable THEN
    code := 'REFUND_EXCEEDS_BET';
  ELSE
    delta := p_amount;
  END IF;
END $$;

-- Spreads an applied refund over its bets, oldest first, recording each part (a void of the refund
-- gives the parts back).
CREATE OR REPLACE FUNCTION wallet_refund_allocate(p_refund_id bigint, p_account accounts, p_amount numeric,
  p_round_id text, p_game_session_id text, p_bet_tx_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  bet transactions%ROWTYPE;
  to_allocate numeric := p_amount;
  part numeric;
BEGIN
  FOR bet IN SELECT * FROM wallet_refund_bets(p_account, p_round_id, p_game_session_id, p_bet_tx_id) b
             WHERE b.status = 'applied' ORDER BY b.id LOOP
    EXIT WHEN to_allocate = 0;
    part := least(bet.amount - bet.refunded_amount, to_allocate);
    CONTINUE WHEN part = 0;
    to_allocate := to_allocate - part;
    UPDATE transactions SET refunded_amount = refunded_amount + part, updated_at = now() WHERE id = bet.id;
    INSERT INTO refund_allocations (refund_transaction_id, bet_transaction_id, amount) VALUES (p_refund_id, bet.id, part);
  END LOOP;
END $$;
