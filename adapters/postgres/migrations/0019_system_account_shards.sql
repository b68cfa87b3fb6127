-- System accounts split into rows (issue 12, API.md §4: "System accounts may be split internally into several
-- rows (to spread a hot row); the API and `ledger check` present each as one account"). A tenant's `clearing` row
-- was locked by every external payment's creation and completion, so it serialised them all; `settlement:<provider>`
-- by every completion of that provider. Each system account is now up to `core.accounts.SYSTEM_SHARDS` rows, told
-- apart by `shard`; a unit of work locks one of them, picked at random (`adapters/postgres/accounts.py`), so
-- concurrent transactions mostly lock different rows. The ledger's invariants hold per row (balance = sum of its
-- entries, its own hash chain) and per tenant and currency (all rows sum to zero), which is what `ledger check`
-- verifies; a row's own balance means nothing alone (it may be negative), only the account's sum does.
-- Existing system accounts become shard 0; user accounts are always shard 0. Applying it scans `accounts` twice
-- (the CHECK, the index) under its ALTER TABLE lock: seconds per million accounts, writes to them waiting.

ALTER TABLE accounts ADD COLUMN shard smallint NOT NULL DEFAULT 0 CHECK (shard >= 0 AND (kind <> 'user' OR shard = 0));
DROP INDEX accounts_one_system_account;
CREATE UNIQUE INDEX accounts_one_system_account ON accounts (tenant_id, kind, currency, shard) WHERE kind <> 'user';
