import { MAX_AMOUNT_INTEGER_DIGITS, MAX_BALANCE_INTEGER_DIGITS } from '@phia/proto';
import type { Database } from './database.js';

/** The first value past each limit, as exact NUMERIC literals (1e24 is 10^24, not a float). */
const PAST_AMOUNT = `1e${MAX_AMOUNT_INTEGER_DIGITS}`;
const PAST_BALANCE = `1e${MAX_BALANCE_INTEGER_DIGITS}`;

/**
 * Versioned migrations, applied in order at start-up. Each runs once (recorded in
 * schema_migrations) inside a transaction holding an advisory lock, so two wallets starting
 * together, or a restart, never apply one twice.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'ledger',
    sql: `
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
`,
  },
  {
    version: 2,
    name: 'attempt_id',
    sql: `
-- The attempt (gateway request id) whose call decided the outcome: a Void names its own attempt, so it
-- never undoes what a duplicate applied and answered.
ALTER TABLE transactions ADD COLUMN attempt_id text;
`,
  },
  {
    version: 3,
    name: 'refused_fingerprint',
    sql: `
-- A refusal's tombstone (the gateway refused a request without its idempotency store): the content it
-- refused. The row claims no content (fingerprint stays NULL) but other content meeting it is a mismatch.
ALTER TABLE transactions ADD COLUMN refused_fingerprint text;
`,
  },
  {
    version: 4,
    name: 'money_limits',
    // From the constants of @phia/proto that the gateway and the ledger check (contract rule 10); the
    // code declines first, these keep a bug from storing what no reader accepts. The counter
    // accounts (house, cashier) sum many players, so they are not bounded. Fails on a database
    // already holding a value past a limit: such rows must be repaired by hand first.
    sql: `
ALTER TABLE accounts ADD CONSTRAINT player_balance_within_limit
  CHECK (owner_kind <> 'player' OR balance < ${PAST_BALANCE});
ALTER TABLE transactions ADD CONSTRAINT amount_within_limit CHECK (amount < ${PAST_AMOUNT});
ALTER TABLE transactions ADD CONSTRAINT balance_after_within_limit CHECK (balance_after < ${PAST_BALANCE});
ALTER TABLE entries ADD CONSTRAINT entry_within_limit CHECK (abs(amount) < ${PAST_AMOUNT});
`,
  },
];

export async function migrate(db: Database): Promise<number[]> {
  const applied: number[] = [];
  await db.transaction(async (tx) => {
    // Serializes concurrent start-ups on this schema.
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`phia-wallet-migrations:${db.schema}`]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
    const doneVersions = new Set(done.rows.map((row) => Number(row.version)));
    for (const migration of MIGRATIONS) {
      if (doneVersions.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
  });
  return applied;
}
