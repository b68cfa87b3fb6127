-- External payments: retry schedule, the dead letter queue, and indexes for the workers' queries.

ALTER TABLE payments ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE refunds ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_consistent
    CHECK ((status = 'pending') = (completed_at IS NULL));

CREATE INDEX refunds_pending ON refunds (updated_at) WHERE status = 'pending';

CREATE TABLE dead_letters (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('payment', 'refund')),
    target_id       uuid NOT NULL,
    error           text NOT NULL,
    attempts        integer NOT NULL CHECK (attempts >= 0),
    correlation_id  text,
    created_at      timestamptz NOT NULL,
    retried_at      timestamptz
);
CREATE INDEX dead_letters_newest ON dead_letters (created_at DESC, id DESC);
CREATE INDEX dead_letters_open ON dead_letters (target_id) WHERE retried_at IS NULL;
