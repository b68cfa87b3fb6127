-- Batches of transfers (API.md §10): each stored once, as it was answered, for GET /batches/{id}. The answer is
-- `json`, not `jsonb`: kept verbatim, key order included, so the batch is shown again exactly as answered. Its
-- transfers are ordinary payments (and entries, events, outbox rows) written in the same transaction.

CREATE TABLE batches (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    atomic      boolean NOT NULL,
    status      text NOT NULL CHECK (status IN ('completed', 'partially_completed', 'failed')),
    transfers   integer NOT NULL CHECK (transfers BETWEEN 1 AND 1000),
    view        json NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT batches_atomic_completed CHECK (NOT atomic OR status = 'completed')
);
