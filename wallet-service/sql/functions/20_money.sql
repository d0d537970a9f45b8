-- One money request (bet, win, refund, deposit, withdraw) as one transaction: lock the player's
-- account row first (one lock order: all requests of an account are serialized), then replay the
-- stored outcome of (kind, tx_id) if there is one, else decide, store the outcome row (declines too,
-- so a duplicate always gets the first answer, also after a restart) and the balanced entries.
-- Each statement of a VOLATILE function sees what was committed before it started, so whatever the
-- previous holder of the account lock committed is seen. Empty optional fields come as NULL.
CREATE OR REPLACE FUNCTION wallet_money(
  p_kind text, p_tx_id text, p_user_id text, p_currency text, p_amount numeric,
  p_round_id text, p_game_session_id text, p_bet_tx_id text, p_session_id text, p_game_id text,
  p_attempt_id text, p_fingerprint text, p_default_timeout_ms integer, p_commit_by_ms bigint,
  OUT out_status text, OUT out_code text, OUT out_balance text)
LANGUAGE plpgsql AS $$
DECLARE
  account accounts%ROWTYPE;
  existing transactions%ROWTYPE;
  code text;
  delta numeric;
  made_id bigint;
  ignored bigint;
BEGIN
  ignored := wallet_timeouts(p_default_timeout_ms, p_commit_by_ms);
  IF p_kind = 'deposit' THEN
    INSERT INTO accounts (owner_kind, user_id, currency) VALUES ('player', p_user_id, p_currency) ON CONFLICT DO NOTHING;
  END IF;
  SELECT * INTO account FROM accounts
  WHERE owner_kind = 'player' AND user_id = p_user_id AND currency = p_currency FOR UPDATE;
  SELECT * INTO existing FROM transactions WHERE kind = p_kind AND tx_id = p_tx_id;
  IF existing.id IS NOT NULL THEN
    SELECT r.out_status, r.out_code, r.out_balance INTO out_status, out_code, out_balance
    FROM wallet_replay(existing, p_fingerprint, p_user_id, p_currency, p_amount, p_round_id, p_game_session_id,
      p_bet_tx_id, p_session_id, p_game_id, p_attempt_id) r;
  ELSE
    IF account.id IS NULL THEN
      code := 'ACCOUNT_NOT_FOUND';
    ELSIF p_kind = 'bet' THEN
      code := wallet_bet_refusal(account, p_amount, p_round_id, p_game_session_id, p_session_id);
      delta := -p_amount;
    ELSIF p_kind = 'win' THEN
      code := wallet_win_refusal(account, p_round_id, p_game_session_id, p_bet_tx_id);
      delta := p_amount;
    ELSIF p_kind = 'refund' THEN
      SELECT r.code, r.delta INTO code, delta
      FROM wallet_refund_decide(account, p_tx_id, p_amount, p_round_id, p_game_session_id, p_bet_tx_id) r;
    ELSIF p_kind = 'deposit' THEN
      delta := p_amount;
    ELSE
      code := CASE WHEN account.balance < p_amount THEN 'INSUFFICIENT_FUNDS' END;
      delta := -p_amount;
    END IF;
    IF code IS NULL AND NOT wallet_balance_fits(account.balance + delta) THEN
      code := 'INVALID_REQUEST';
    END IF;

    INSERT INTO transactions (kind, tx_id, status, fingerprint, error_code, user_id, currency, amount, round_id,
      game_session_id, bet_tx_id, session_id, game_id, attempt_id, balance_after)
    VALUES (p_kind, p_tx_id, CASE WHEN code IS NULL THEN 'applied' ELSE 'declined' END, p_fingerprint, code,
      p_user_id, p_currency, p_amount, p_round_id, p_game_session_id, p_bet_tx_id, p_session_id, p_game_id,
      p_attempt_id, CASE WHEN code IS NULL THEN account.balance + delta END)
    RETURNING id INTO made_id;
    IF code IS NULL THEN
      ignored := wallet_book(made_id, account.id,
        wallet_counter_account(CASE WHEN p_kind IN ('deposit', 'withdraw') THEN 'cashier' ELSE 'house' END, p_currency),
        delta);
      IF p_kind = 'refund' AND delta > 0 THEN
        PERFORM wallet_refund_allocate(made_id, account, delta, p_round_id, p_game_session_id, p_bet_tx_id);
      END IF;
      out_status := 'applied';
      out_balance := (account.balance + delta)::text;
    ELSE
      out_status := 'declined';
      out_code := code;
    END IF;
  END IF;
  IF wallet_late(p_commit_by_ms) THEN
    RAISE EXCEPTION 'deadline passed before commit' USING ERRCODE = 'PH002';
  END IF;
END $$;

-- A row with this (kind, tx_id) exists: replay its outcome, or settle a tombstone or an early void.
CREATE OR REPLACE FUNCTION wallet_replay(
  p_row transactions, p_fingerprint text, p_user_id text, p_currency text, p_amount numeric, p_round_id text,
  p_game_session_id text, p_bet_tx_id text, p_session_id text, p_game_id text, p_attempt_id text,
  OUT out_status text, OUT out_code text, OUT out_balance text)
LANGUAGE plpgsql AS $$
BEGIN
  -- A refusal's tombstone (the gateway refused a request without its idempotency store): other
  -- content than the refused one is a mismatch.
  IF p_row.fingerprint IS NULL AND p_row.refused_fingerprint IS NOT NULL
     AND p_row.refused_fingerprint <> p_fingerprint THEN
    PERFORM wallet_refuse('IDEMPOTENCY_MISMATCH');
  END IF;
  IF p_row.fingerprint IS NULL THEN
    -- Made by a refund (tombstone) or a Void before this request arrived: it can never apply now.
    -- Record what the request was, so its duplicates replay the same refusal; a tombstone's own code
    -- is the error a void recorded (the answer the request already got).
    out_code := CASE WHEN p_row.status = 'tombstone' THEN coalesce(p_row.error_code, 'BET_REFUNDED')
                     ELSE wallet_stored_code(p_row) END;
    UPDATE transactions SET fingerprint = p_fingerprint,
      -- A refund's tombstone stays one (its bet's win is refused) unless it is only BET_REFUNDED.
      status = CASE WHEN p_row.status = 'tombstone' AND out_code = 'BET_REFUNDED' THEN 'declined' ELSE p_row.status END,
      error_code = out_code, user_id = p_user_id, currency = p_currency, amount = p_amount, round_id = p_round_id,
      game_session_id = p_game_session_id, bet_tx_id = p_bet_tx_id, session_id = p_session_id, game_id = p_game_id,
      -- The attempt that met the tombstone decided this answer: its own void must know it.
      attempt_id = p_attempt_id, updated_at = now()
    WHERE id = p_row.id;
    out_status := 'declined';
    RETURN;
  END IF;
  IF p_row.fingerprint <> p_fingerprint THEN
    PERFORM wallet_refuse('IDEMPOTENCY_MISMATCH');
  END IF;
  IF p_row.status = 'applied' THEN
    out_status := 'applied';
    out_balance := p_row.balance_after::text;
  ELSE
    out_status := 'declined';
    out_code := wallet_stored_code(p_row);
  END IF;
END $$;

-- Why a bet is refused (NULL: it applies): its session (when it names one), a blocked player, a refunded
-- round, too little money, in that order. The session and the round are read by one statement.
CREATE OR REPLACE FUNCTION wallet_bet_refusal(p_account accounts, p_amount numeric, p_round_id text,
  p_game_session_id text, p_session_id text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  problem text;
  tombstoned boolean;
BEGIN
  SELECT CASE
      WHEN p_session_id IS NULL THEN NULL
      WHEN s.session_id IS NULL OR s.closed_at IS NOT NULL OR s.expires_at <= now() THEN 'SESSION_NOT_FOUND'
      WHEN s.user_id <> p_account.user_id OR s.currency <> p_account.currency THEN 'WRONG_SESSION'
    END,
    EXISTS (SELECT 1 FROM round_tombstones t WHERE t.user_id = p_account.user_id AND t.currency = p_account.currency
      AND t.game_session_id = p_game_session_id AND t.round_id = p_round_id)
  INTO problem, tombstoned
  FROM (SELECT 1) AS one LEFT JOIN sessions s ON s.session_id = p_session_id;
  IF problem IS NOT NULL THEN
    RETURN problem;
  END IF;
  IF p_account.blocked THEN
    RETURN 'PLAYER_BLOCKED';
  END IF;
  IF tombstoned THEN
    RETURN 'BET_REFUNDED';
  END IF;
  IF p_account.balance < p_amount THEN
    RETURN 'INSUFFICIENT_FUNDS';
  END IF;
  RETURN NULL;
END $$;

-- A win is refused for a bet of another player or currency (contract rule 9), a refunded bet or
-- round, and a bet that was declined or voided; a bet never seen does not stop it.
CREATE OR REPLACE FUNCTION wallet_win_refusal(p_account accounts, p_round_id text, p_game_session_id text,
  p_bet_tx_id text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  bet transactions%ROWTYPE;
BEGIN
  IF p_bet_tx_id IS NOT NULL THEN
    SELECT * INTO bet FROM transactions WHERE kind = 'bet' AND tx_id = p_bet_tx_id;
  END IF;
  IF bet.user_id IS NOT NULL AND (bet.user_id <> p_account.user_id OR bet.currency IS DISTINCT FROM p_account.currency) THEN
    RETURN 'INVALID_REQUEST';
  END IF;
  IF wallet_round_tombstoned(p_account, p_round_id, p_game_session_id)
     OR bet.status = 'tombstone' OR bet.refunded_amount > 0 OR bet.error_code = 'BET_REFUNDED' THEN
    RETURN 'BET_REFUNDED';
  END IF;
  IF bet.status IN ('declined', 'voided') THEN
    RETURN 'BET_NOT_APPLIED';
  END IF;
  RETURN NULL;
END $$;

-- A refund by round found no bet: later bets (and wins) of that round are refused. plpgsql, not sql:
-- PostgreSQL (before 18) keeps no plan of a SQL function with a query between transactions, so it would
-- parse and plan the query again in every call.
CREATE OR REPLACE FUNCTION wallet_round_tombstoned(p_account accounts, p_round_id text, p_game_session_id text)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM round_tombstones WHERE user_id = p_account.user_id AND currency = p_account.currency
    AND game_session_id = p_game_session_id AND round_id = p_round_id);
END $$;

-- Several money requests in one transaction (the wallet sends those that waited together): each is
-- wallet_money with its own arguments, in order, one row each. Any error rolls all of them back and the
-- wallet then sends each alone. Their accounts are locked first, in one order (so two batches never
-- wait for each other), waiting at most 20 ms for one that another transaction holds: a held account
-- must not hold up the other players of the batch. Each request checks its own deadline as its last
-- step; the earliest is checked again at the end, since all of them commit at once.
CREATE OR REPLACE FUNCTION wallet_money_batch(
  p_kind text[], p_tx_id text[], p_user_id text[], p_currency text[], p_amount numeric[],
  p_round_id text[], p_game_session_id text[], p_bet_tx_id text[], p_session_id text[], p_game_id text[],
  p_attempt_id text[], p_fingerprint text[], p_default_timeout_ms integer[], p_commit_by_ms bigint[])
RETURNS TABLE (out_index integer, out_status text, out_code text, out_balance text)
LANGUAGE plpgsql AS $$
DECLARE
  earliest bigint;
  ignored text;
BEGIN
  ignored := set_config('lock_timeout', '20ms', true);
  -- One index lookup per account (LATERAL), in the order of (user_id, currency).
  PERFORM 1
  FROM (SELECT DISTINCT x.u, x.c FROM unnest(p_user_id, p_currency) AS x(u, c) ORDER BY x.u, x.c) k,
    LATERAL (SELECT a.id FROM accounts a
      WHERE a.owner_kind = 'player' AND a.user_id = k.u AND a.currency = k.c FOR UPDATE) l;
  FOR i IN 1 .. coalesce(array_length(p_kind, 1), 0) LOOP
    out_index := i;
    SELECT m.out_status, m.out_code, m.out_balance INTO out_status, out_code, out_balance
    FROM wallet_money(p_kind[i], p_tx_id[i], p_user_id[i], p_currency[i], p_amount[i], p_round_id[i],
      p_game_session_id[i], p_bet_tx_id[i], p_session_id[i], p_game_id[i], p_attempt_id[i], p_fingerprint[i],
      p_default_timeout_ms[i], p_commit_by_ms[i]) m;
    RETURN NEXT;
  END LOOP;
  SELECT min(c) INTO earliest FROM unnest(p_commit_by_ms) c;
  IF wallet_late(earliest) THEN
    RAISE EXCEPTION 'deadline passed before commit' USING ERRCODE = 'PH002';
  END IF;
END $$;
