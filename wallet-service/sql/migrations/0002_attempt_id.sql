-- The attempt (gateway request id) whose call decided the outcome: a Void names its own attempt, so it
-- never undoes what a duplicate applied and answered.
ALTER TABLE transactions ADD COLUMN attempt_id text;
