-- Balances at a point in time and statements of a period (API.md §3): an account's entries by time. One more
-- index entry per ledger entry written; a statement then reads only its period, and `?at=` one index entry.
-- `seq` last: entries of one posting share their time, and the order among them is the ledger's.

CREATE INDEX account_transactions_by_time ON account_transactions (account_id, created_at, seq);
