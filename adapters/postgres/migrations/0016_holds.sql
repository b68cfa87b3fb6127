-- Holds (API.md §9): two-phase transfers. An account's `held` is the sum of its active holds (as source), changed
-- only under the account's row lock together with them; `payments ledger check` verifies the sum. What a user
-- account may still spend, balance - held, never goes below minus its overdraft limit.

ALTER TABLE accounts ADD COLUMN held bigint NOT NULL DEFAULT 0 CONSTRAINT held_not_negative CHECK (held >= 0);
ALTER TABLE accounts ADD CONSTRAINT user_available_within_overdraft
    CHECK (kind <> 'user' OR balance - held >= -overdraft_limit);

CREATE TABLE holds (
    id                      uuid PRIMARY KEY,
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    source_account_id       uuid NOT NULL REFERENCES accounts (id),
    destination_account_id  uuid NOT NULL REFERENCES accounts (id),
    amount                  bigint NOT NULL CHECK (amount > 0),
    currency                char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status                  text NOT NULL CHECK (status IN ('active', 'captured', 'voided', 'expired')),
    captured_amount         bigint NOT NULL DEFAULT 0 CHECK (captured_amount >= 0 AND captured_amount <= amount),
    payment_id              uuid REFERENCES payments (id),
    expires_at              timestamptz NOT NULL,
    description             text,
    metadata                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    correlation_id          text,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    CONSTRAINT hold_distinct_accounts CHECK (source_account_id <> destination_account_id),
    CONSTRAINT captured_with_its_transfer CHECK ((status = 'captured') = (payment_id IS NOT NULL)
                                                 AND (status = 'captured') = (captured_amount > 0))
);
CREATE INDEX holds_by_tenant ON holds (tenant_id, created_at DESC, id DESC);
CREATE INDEX holds_by_source ON holds (source_account_id, created_at DESC);
CREATE INDEX holds_by_destination ON holds (destination_account_id, created_at DESC);
-- The sweep's and a locked account's due holds: the active ones, by expiry (an index, not a scan).
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_active_by_source ON holds (source_account_id, expires_at) WHERE status = 'active';
CREATE INDEX holds_metadata ON holds USING gin (metadata jsonb_path_ops) WHERE metadata <> '{}'::jsonb;
