-- Shared steps of the ledger's functions. Every file in sql/functions is run (CREATE OR REPLACE) by
-- each start-up, after the migrations and under the same advisory lock. Functions hold no data, so
-- replacing them is always safe, and they always match the code that calls them; as migrations, every
-- edit would copy a whole function into a new file. A function whose parameters or result change takes
-- a new name, so that a wallet of the previous version still running on the schema keeps working; a
-- helper no longer used is left in place (a call of the previous version may be running it).

-- The helpers below return a value so that callers assign it (`x := f(...)`): plpgsql evaluates that as
-- a simple expression, while PERFORM starts the executor for a statement of its own.

-- Timeouts of this call's own transaction (set_config(..., true): they end with it). With a deadline,
-- every lock wait ends when it comes; a deadline already passed ends the call before it touches
-- anything. statement_timeout only reaches later statements of the transaction (the test seam's
-- BEGIN ... COMMIT): the statement calling the function is already running, and the deadline check
-- at the end (wallet_late) is what keeps its work from committing late. Returns the ms given.
CREATE OR REPLACE FUNCTION wallet_timeouts(p_default_timeout_ms integer, p_commit_by_ms bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  left_ms bigint := p_default_timeout_ms;
  ignored text;
BEGIN
  IF p_commit_by_ms IS NOT NULL THEN
    left_ms := p_commit_by_ms - floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    IF left_ms < 1 THEN
      RAISE EXCEPTION 'deadline passed before the call started' USING ERRCODE = 'PH002';
    END IF;
  END IF;
  ignored := set_config('lock_timeout', left_ms || 'ms', true);
  ignored := set_config('statement_timeout', left_ms || 'ms', true);
  RETURN left_ms;
END $$;

-- Whether the caller's deadline (less the wallet's margin) has passed. Every call checks it as its last
-- step and raises PH002 when it has, so the call's transaction rolls back and nothing commits after
-- the caller has given up.
CREATE OR REPLACE FUNCTION wallet_late(p_commit_by_ms bigint) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  SELECT p_commit_by_ms IS NOT NULL AND clock_timestamp() > to_timestamp(p_commit_by_ms / 1000.0)
$$;

-- A refusal that stores nothing (the whole call rolls back); the message is the contract's error code.
CREATE OR REPLACE FUNCTION wallet_refuse(p_code text, p_detail text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%', p_code USING ERRCODE = 'PH001', DETAIL = coalesce(p_detail, '');
END $$;

-- Whether a player balance fits: fewer than MAX_BALANCE_INTEGER_DIGITS (24) digits before the point.
CREATE OR REPLACE FUNCTION wallet_balance_fits(p_balance numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT p_balance < 1e24 $$;

-- The house (games) or cashier (deposits, withdrawals) account of a currency, made on first use. Its
-- balance column is never updated (its entries are its balance), so it is never a hot row.
CREATE OR REPLACE FUNCTION wallet_counter_account(p_owner_kind text, p_currency text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  found_id bigint;
BEGIN
  SELECT id INTO found_id FROM accounts WHERE owner_kind = p_owner_kind AND user_id = '' AND currency = p_currency;
  IF found_id IS NULL THEN
    INSERT INTO accounts (owner_kind, user_id, currency) VALUES (p_owner_kind, '', p_currency) ON CONFLICT DO NOTHING;
    SELECT id INTO found_id FROM accounts WHERE owner_kind = p_owner_kind AND user_id = '' AND currency = p_currency;
  END IF;
  RETURN found_id;
END $$;

-- Moves p_delta into the player's account and -p_delta into the counter account: two entries. Returns
-- the number of entries written.
CREATE OR REPLACE FUNCTION wallet_book(p_transaction_id bigint, p_account_id bigint, p_counter_id bigint,
  p_delta numeric) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
  IF p_delta = 0 THEN
    RETURN 0;
  END IF;
  UPDATE accounts SET balance = balance + p_delta, updated_at = now() WHERE id = p_account_id;
  INSERT INTO entries (transaction_id, account_id, amount)
  VALUES (p_transaction_id, p_account_id, p_delta), (p_transaction_id, p_counter_id, -p_delta);
  RETURN 2;
END $$;

-- The error a stored outcome replays (a void without a code answered WALLET_TIMEOUT).
CREATE OR REPLACE FUNCTION wallet_stored_code(p_row transactions) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(p_row.error_code, CASE WHEN p_row.status = 'voided' THEN 'WALLET_TIMEOUT' ELSE 'INTERNAL' END)
$$;
