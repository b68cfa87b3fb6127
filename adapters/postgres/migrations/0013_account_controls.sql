-- Account controls (API.md §3): an overdraft limit a debit may take the balance down to (minus it), and the
-- listing of a tenant's accounts by status (`GET /accounts?status=`). `status` itself has been a checked column
-- since 0001. A user account's balance may now go below zero, down to minus its limit, never further.

ALTER TABLE accounts
    ADD COLUMN overdraft_limit bigint NOT NULL DEFAULT 0
        CONSTRAINT overdraft_limit_in_range CHECK (overdraft_limit BETWEEN 0 AND 9007199254740991);

ALTER TABLE accounts DROP CONSTRAINT user_balance_not_negative;
ALTER TABLE accounts ADD CONSTRAINT user_balance_within_overdraft CHECK (kind <> 'user' OR balance >= -overdraft_limit);

CREATE INDEX accounts_by_status ON accounts (tenant_id, status, created_at DESC, id DESC) WHERE kind = 'user';
