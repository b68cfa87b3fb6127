-- Webhook subscriptions and their deliveries (API.md §7).
-- 0001 sketched `webhooks` and `webhook_deliveries` tables that no code ever wrote to; they are
-- replaced by these (a body column holding the exact bytes sent, trace context, stricter checks).

DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhooks;

CREATE TABLE webhook_subscriptions (
    id                          uuid PRIMARY KEY,
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events                      text[] NOT NULL CHECK (cardinality(events) > 0),
    description                 text CHECK (length(description) <= 1000),
    enabled                     boolean NOT NULL DEFAULT true,
    secret                      text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    -- rotated-out secrets still signing: [{"secret": ..., "expires_at": RFC 3339}, ...]
    previous_secrets            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(previous_secrets) = 'array'),
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);
CREATE INDEX webhook_subscriptions_by_tenant ON webhook_subscriptions (tenant_id, created_at DESC, id DESC);

CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    subscription_id   uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id          uuid NOT NULL,
    event_type        text NOT NULL,
    body              text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code  integer,
    last_error        text,
    next_attempt_at   timestamptz,
    delivered_at      timestamptz,
    correlation_id    text,
    trace_context     jsonb NOT NULL DEFAULT '{}',
    granted_through   integer NOT NULL DEFAULT 0 CHECK (granted_through >= 0),  -- attempts a redelivery allows
    queued            integer NOT NULL DEFAULT 0 CHECK (queued >= 0),  -- times queued since its last attempt began
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- one delivery per event per subscription: a redelivered event fans out once
    CONSTRAINT one_delivery_per_event UNIQUE (subscription_id, event_id),
    -- a pending delivery always has a next attempt (the scheduler finds it), a finished one never does
    CONSTRAINT webhook_delivery_scheduled CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
