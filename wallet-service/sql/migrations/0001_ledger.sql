CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  -- player: a user's wallet; house: the games' side of bets, wins and refunds; cashier: deposits and withdrawals
  owner_kind text NOT NULL CHECK (owner_kind IN ('player', 'house', 'cashier')),
  user_id text NOT NULL,
  currency text NOT NULL,
  balance numeric NOT NULL DEFAULT 0,
  blocked boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_owner_unique UNIQUE (owner_kind, user_id, currency),
  -- The rule "a balance never goes below zero", enforced by the database as well as the code.
  CONSTRAINT player_balance_not_negative CHECK (owner_kind <> 'player' OR balance >= 0)
);

-- One row per money request, keyed by (kind, tx_id): its stored outcome is the durable answer.
-- Rows are never deleted by the service.
CREATE TABLE transactions (
  id bigserial PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('bet', 'win', 'refund', 'deposit', 'withdraw')),
  tx_id text NOT NULL,
  -- applied: moved money; declined: refused with error_code; tombstone: a refund came first, the
  -- request will be refused; voided: undone or prevented by Void, replays error_code
  status text NOT NULL CHECK (status IN ('applied', 'declined', 'tombstone', 'voided')),
  fingerprint text,
  error_code text,
  user_id text,
  currency text,
  amount numeric CHECK (amount >= 0),
  round_id text,
  game_session_id text,
  bet_tx_id text,
  session_id text,
  game_id text,
  balance_after numeric,
  refunded_amount numeric NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT transactions_kind_tx_id_unique UNIQUE (kind, tx_id),
  CONSTRAINT refunded_within_amount CHECK (amount IS NULL OR refunded_amount <= amount)
);
CREATE INDEX transactions_round_idx ON transactions (user_id, currency, game_session_id, round_id) WHERE kind = 'bet';

-- Double entry: every movement writes entries that sum to zero.
CREATE TABLE entries (
  id bigserial PRIMARY KEY,
  transaction_id bigint NOT NULL REFERENCES transactions (id),
  account_id bigint NOT NULL REFERENCES accounts (id),
  amount numeric NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_account_idx ON entries (account_id);
CREATE INDEX entries_transaction_idx ON entries (transaction_id);

-- Which bets a refund reversed, and by how much (so voiding a refund can give it back).
CREATE TABLE refund_allocations (
  refund_transaction_id bigint NOT NULL REFERENCES transactions (id),
  bet_transaction_id bigint NOT NULL REFERENCES transactions (id),
  amount numeric NOT NULL CHECK (amount >= 0),
  PRIMARY KEY (refund_transaction_id, bet_transaction_id)
);

-- A refund by round that found no bet: later bets of that round are refused.
CREATE TABLE round_tombstones (
  user_id text NOT NULL,
  currency text NOT NULL,
  game_session_id text NOT NULL,
  round_id text NOT NULL,
  refund_tx_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, currency, game_session_id, round_id)
);

CREATE TABLE sessions (
  session_id text PRIMARY KEY,
  user_id text NOT NULL,
  currency text NOT NULL,
  expires_at timestamptz NOT NULL,
  closed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
