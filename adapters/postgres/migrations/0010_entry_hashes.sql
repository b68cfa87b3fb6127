-- Tamper-evident entries (API.md §4, issue 14): each entry's `hash` is SHA-256 over the previous entry's hash on
-- the same account and the entry's own fields, so that editing, deleting or reordering a stored entry breaks the
-- chain (`payments ledger check` finds it). The application computes the hashes of new entries
-- (core/hash_chain.py); this migration computes those of the entries written before it, in SQL, to the same
-- text (docs/design.md, "Tamper-evident entries"; a test holds the two to the same vectors).
--
-- accounts.last_entry_hash is the hash of the account's latest entry (64 zeros before its first): a posting reads
-- it with the account's row lock, which it takes anyway, so chaining costs no extra round trip.
--
-- The new columns are NOT NULL without a default for entries: code from before this migration, which writes no
-- hash, can no longer add entries. Stop the old version's processes before migrating.

-- The text hashed, field by field: previous hash, id, account, payment ('' when none), type, amount and
-- balance_after (signed integer minor units), currency, created_at (UTC, milliseconds, as the API shows it).
CREATE FUNCTION ledger_entry_hash(previous text, id uuid, account_id uuid, payment_id uuid, type text,
                                  amount bigint, balance_after bigint, currency text, created_at timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(concat_ws('|', previous, id::text, account_id::text,
                                              coalesce(payment_id::text, ''), type, amount::text,
                                              balance_after::text, currency,
                                              to_char(created_at AT TIME ZONE 'UTC',
                                                      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
                                    'UTF8')), 'hex')
$$;

ALTER TABLE account_transactions ADD COLUMN hash text;
ALTER TABLE accounts ADD COLUMN last_entry_hash text NOT NULL
    DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
    CONSTRAINT last_entry_hash_is_sha256 CHECK (last_entry_hash ~ '^[0-9a-f]{64}$');

-- Backfill: every account's entries in seq order, each chained from the one before it (by position, as
-- `ledger check` reads a chain: an account whose seq has gaps gets a chain that its check still reports as drift
-- of balance_after). Entries are append-only: the trigger that says so is off for the backfill only, while this
-- migration's transaction holds the table exclusively.
ALTER TABLE account_transactions DISABLE TRIGGER account_transactions_append_only;
DO $$
DECLARE
    e record;
    account uuid;
    previous text;
BEGIN
    FOR e IN SELECT * FROM account_transactions ORDER BY account_id, seq LOOP
        IF account IS DISTINCT FROM e.account_id THEN
            account := e.account_id;
            previous := repeat('0', 64);
        END IF;
        previous := ledger_entry_hash(previous, e.id, e.account_id, e.payment_id, e.type, e.amount,
                                      e.balance_after, e.currency, e.created_at);
        UPDATE account_transactions SET hash = previous WHERE id = e.id;
    END LOOP;
END $$;
ALTER TABLE account_transactions ENABLE TRIGGER account_transactions_append_only;

UPDATE accounts a SET last_entry_hash = latest.hash
FROM (SELECT DISTINCT ON (account_id) account_id, hash FROM account_transactions ORDER BY account_id, seq DESC) latest
WHERE a.id = latest.account_id;

ALTER TABLE account_transactions ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT hash_is_sha256 CHECK (hash ~ '^[0-9a-f]{64}$');
