-- Amounts have at most 18 digits before the point, player balances 24 (MAX_AMOUNT_INTEGER_DIGITS and
-- MAX_BALANCE_INTEGER_DIGITS of @phia/proto, contract rule 10; migrations.test.ts checks they agree).
-- The code declines first; these keep a bug from storing what no reader accepts. The counter accounts
-- (house, cashier) sum many players, so they are not bounded. Fails on a database already holding a
-- value past a limit: such rows must be repaired by hand first.
ALTER TABLE accounts ADD CONSTRAINT player_balance_within_limit
  CHECK (owner_kind <> 'player' OR balance < 1e24);
ALTER TABLE transactions ADD CONSTRAINT amount_within_limit CHECK (amount < 1e18);
ALTER TABLE transactions ADD CONSTRAINT balance_after_within_limit CHECK (balance_after < 1e24);
ALTER TABLE entries ADD CONSTRAINT entry_within_limit CHECK (abs(amount) < 1e18);
