-- Webhook secrets are kept sealed (XChaCha20-Poly1305 under the key of
-- SEXTANT_SECRETS_KEY, bound to their client and provider), never in
-- plaintext. The key is not in the database, so a secret stored in
-- plaintext cannot be sealed here: such secrets are removed, and each must
-- be set again (PUT /v1/clients/{client_id}/webhooks/{provider}) once the
-- command API has a secrets key. `key_id` names the key a value was sealed
-- under (an id derived from the key, not the key).
DELETE FROM webhook_secrets;
ALTER TABLE webhook_secrets
    DROP COLUMN secret,
    ADD COLUMN sealed bytea NOT NULL,
    ADD COLUMN key_id text  NOT NULL;

-- A provider's message id names a send only within its client (the send id
-- is derived from client, provider and message id): nothing looks a message
-- up across clients, so the index that served such a lookup goes.
DROP INDEX IF EXISTS send_state_message_idx;
