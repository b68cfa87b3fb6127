-- Reconciliation against the providers' settlement reports (API.md §12): one row per run, with its counts and
-- its unmatched items (matched ones are only counted). Runs are written once, with their result.

CREATE TABLE reconciliations (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    provider             text NOT NULL CHECK (provider ~ '^[a-z0-9_]+$'),
    day                  date NOT NULL,
    status               text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    matched              integer NOT NULL DEFAULT 0 CHECK (matched >= 0),
    missing_in_ledger    integer NOT NULL DEFAULT 0 CHECK (missing_in_ledger >= 0),
    missing_at_provider  integer NOT NULL DEFAULT 0 CHECK (missing_at_provider >= 0),
    amount_mismatch      integer NOT NULL DEFAULT 0 CHECK (amount_mismatch >= 0),
    items                jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(items) = 'array'),
    failure_reason       text CHECK (length(failure_reason) <= 1000),
    correlation_id       text,
    created_at           timestamptz NOT NULL,
    completed_at         timestamptz,
    CONSTRAINT reconciliations_finished_when_not_running CHECK ((status = 'running') = (completed_at IS NULL)),
    CONSTRAINT reconciliations_failure_has_reason CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);
-- the daily run's "done yet?" and the mismatch gauge's "latest per tenant and provider"
CREATE INDEX reconciliations_by_day ON reconciliations (tenant_id, provider, day DESC, created_at DESC);

-- A reconciliation reads a provider's settlement entries of one day (and a margin). Entries are appended in
-- time order, so a BRIN index on created_at finds a day's blocks for almost nothing at insert time (a B-tree
-- on (account_id, created_at) would cost every transfer an index insert).
CREATE INDEX account_transactions_created_brin ON account_transactions USING brin (created_at);
