-- Secrets at rest (issue 11): webhook signing secrets, and the stored responses that show one (an
-- Idempotency-Key's copy of a create or rotate-secret answer), are kept encrypted under PAYMENTS_SECRETS_KEYS
-- (Fernet; adapters/crypto.py). SQL holds no key, so secrets written in plain text before this migration stay
-- readable until `payments secrets rotate` encrypts them: the checks below are NOT VALID, refusing every new
-- plain-text write at once, and `rotate` validates them when no plain-text row is left.

ALTER TABLE webhook_subscriptions DROP CONSTRAINT webhook_subscriptions_secret_check;
ALTER TABLE webhook_subscriptions ADD CONSTRAINT webhook_secrets_sealed CHECK (
    secret NOT LIKE 'whsec\_%'
    AND NOT jsonb_path_exists(previous_secrets, '$[*].secret ? (@ starts with "whsec_")')) NOT VALID;

ALTER TABLE idempotency_keys ADD COLUMN response_sealed boolean NOT NULL DEFAULT false;
-- '\x77687365635f' is "whsec_": a response showing a secret is stored sealed
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_secrets_sealed
    CHECK (response_sealed OR position('\x77687365635f'::bytea IN response_body) = 0) NOT VALID;
