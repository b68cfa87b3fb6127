-- The whole schema: ledger, payments, reliability tables and webhooks.
-- Constraints guard the invariants; the application never relies on them alone.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix      text NOT NULL,
    scopes      text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write']),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE accounts (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    kind        text NOT NULL CHECK (kind IN ('user', 'funding', 'clearing') OR kind ~ '^settlement:[a-z0-9_]+$'),
    user_id     text CHECK (length(user_id) BETWEEN 1 AND 255),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance     bigint NOT NULL DEFAULT 0,
    version     bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT user_balance_not_negative CHECK (kind <> 'user' OR balance >= 0),
    CONSTRAINT user_accounts_have_user CHECK ((kind = 'user') = (user_id IS NOT NULL))
);
CREATE UNIQUE INDEX accounts_one_system_account ON accounts (tenant_id, kind, currency) WHERE kind <> 'user';
CREATE INDEX accounts_by_tenant ON accounts (tenant_id, created_at DESC, id DESC) WHERE kind = 'user';
CREATE INDEX accounts_by_user ON accounts (tenant_id, user_id, created_at DESC, id DESC) WHERE kind = 'user';

CREATE TABLE payments (
    id                      uuid PRIMARY KEY,
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    payment_type            text NOT NULL CHECK (payment_type IN ('internal_transfer', 'external_payment')),
    status                  text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed',
                                                            'cancelled', 'partially_refunded', 'refunded')),
    source_account_id       uuid NOT NULL REFERENCES accounts (id),
    destination_account_id  uuid REFERENCES accounts (id),
    amount                  bigint NOT NULL CHECK (amount > 0 AND amount <= 9007199254740991),
    currency                char(3) NOT NULL,
    provider                text,
    provider_reference      text,
    refunded_amount         bigint NOT NULL DEFAULT 0,
    failure_reason          text,
    description             text CHECK (length(description) <= 1000),
    metadata                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    version                 bigint NOT NULL DEFAULT 0,
    attempts                integer NOT NULL DEFAULT 0,
    correlation_id          text,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    completed_at            timestamptz,
    CONSTRAINT refunds_within_amount CHECK (refunded_amount BETWEEN 0 AND amount),
    CONSTRAINT internal_has_destination CHECK ((payment_type = 'internal_transfer') = (destination_account_id IS NOT NULL)),
    CONSTRAINT external_has_provider CHECK ((payment_type = 'external_payment') = (provider IS NOT NULL)),
    CONSTRAINT distinct_accounts CHECK (source_account_id <> destination_account_id)
);
CREATE INDEX payments_by_tenant ON payments (tenant_id, created_at DESC, id DESC);
CREATE INDEX payments_by_source ON payments (source_account_id, created_at DESC);
CREATE INDEX payments_by_destination ON payments (destination_account_id, created_at DESC) WHERE destination_account_id IS NOT NULL;
CREATE INDEX payments_in_flight ON payments (status, updated_at) WHERE status IN ('pending', 'processing');

CREATE TABLE refunds (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    payment_id          uuid NOT NULL REFERENCES payments (id),
    amount              bigint NOT NULL CHECK (amount > 0),
    currency            char(3) NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason              text CHECK (length(reason) <= 1000),
    provider_reference  text,
    failure_reason      text,
    attempts            integer NOT NULL DEFAULT 0,
    correlation_id      text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    completed_at        timestamptz
);
CREATE INDEX refunds_by_payment ON refunds (payment_id, created_at DESC);

-- Append-only ledger. seq is the account's version after the entry: (account_id, seq)
-- orders an account's history and lets balance_after be checked as a chain.
CREATE TABLE account_transactions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    account_id      uuid NOT NULL REFERENCES accounts (id),
    posting_id      uuid NOT NULL,
    payment_id      uuid REFERENCES payments (id),
    refund_id       uuid REFERENCES refunds (id),
    seq             bigint NOT NULL CHECK (seq > 0),
    type            text NOT NULL CHECK (type IN ('debit', 'credit')),
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_after   bigint NOT NULL,
    currency        char(3) NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT sign_matches_type CHECK ((type = 'debit') = (amount < 0)),
    CONSTRAINT one_entry_per_version UNIQUE (account_id, seq)
);
CREATE INDEX account_transactions_by_posting ON account_transactions (posting_id);
CREATE INDEX account_transactions_by_payment ON account_transactions (payment_id) WHERE payment_id IS NOT NULL;

-- Entries are never changed or removed.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account_transactions is append-only' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER account_transactions_append_only BEFORE UPDATE OR DELETE ON account_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Double entry, checked by the database at commit: a posting's entries sum to zero in one currency.
CREATE FUNCTION ledger_posting_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT sum(amount) <> 0 OR count(DISTINCT currency) <> 1
          FROM account_transactions WHERE posting_id = NEW.posting_id) THEN
        RAISE EXCEPTION 'posting % does not balance', NEW.posting_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER account_transactions_balanced AFTER INSERT ON account_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_posting_balanced();

CREATE TABLE payment_events (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    payment_id      uuid NOT NULL REFERENCES payments (id),
    sequence        integer NOT NULL CHECK (sequence >= 0),
    type            text NOT NULL,
    data            jsonb NOT NULL,
    correlation_id  text,
    created_at      timestamptz NOT NULL,
    CONSTRAINT one_event_per_version UNIQUE (payment_id, sequence)
);

CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    topic           text NOT NULL,
    aggregate_id    uuid NOT NULL,
    payload         jsonb NOT NULL,
    correlation_id  text,
    trace_context   jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    published_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);
CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;

CREATE TABLE idempotency_keys (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint     bytea NOT NULL,
    status_code     integer NOT NULL CHECK (status_code BETWEEN 200 AND 499),
    response_body   bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Leases for singleton jobs; fencing_token grows with every new holder.
CREATE TABLE distributed_locks (
    name            text PRIMARY KEY,
    owner           text NOT NULL,
    fencing_token   bigint NOT NULL DEFAULT 0,
    acquired_at     timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);

CREATE TABLE webhooks (
    id                          uuid PRIMARY KEY,
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    url                         text NOT NULL CHECK (length(url) <= 2048),
    events                      text[] NOT NULL CHECK (cardinality(events) > 0),
    description                 text,
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id, created_at DESC, id DESC);

CREATE TABLE webhook_deliveries (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    webhook_id          uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id            uuid NOT NULL,
    event_type          text NOT NULL,
    payload             jsonb NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    last_status_code    integer,
    last_error          text,
    next_attempt_at     timestamptz,
    delivered_at        timestamptz,
    correlation_id      text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CONSTRAINT one_delivery_per_event UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
