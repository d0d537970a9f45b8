-- A refusal's tombstone (the gateway refused a request without its idempotency store): the content it
-- refused. The row claims no content (fingerprint stays NULL) but other content meeting it is a mismatch.
ALTER TABLE transactions ADD COLUMN refused_fingerprint text;
