-- The floor's transfer (bench/floor.py, issue 12): the core of POST /api/v1/transfers as ONE function call, on the
-- product's schema, so that the floor app pays one round trip per transfer and the API's cost shows against it.
--
--   psql "$DB" -f bench/floor.sql      (bench/run.py and bench/floor.py apply it; CREATE OR REPLACE, idempotent)
--
-- What it does is what the API's make_transfer does to the ledger, in the same order:
--   1. lock both accounts in ascending id order (the API's accounts.LOCK: SELECT ... ORDER BY id FOR UPDATE);
--   2. check them: both exist, are user accounts of one tenant, both active (not frozen or closed), hold the
--      transfer's currency, and the source has the funds down to minus its overdraft limit (core.ledger.post's
--      checks, including the balance range);
--   3. update both balances, versions and last_entry_hash (one UPDATE ... FROM VALUES, like the API's write);
--   4. insert both entries (one INSERT, two rows), each with its hash chained from the account's last hash
--      (ledger_entry_hash, migrations 0010 and 0017: the same text core/hash_chain.py hashes in the API).
-- What it does NOT do, on purpose (the floor is "the same transfer, nothing else"): no payment row, no
-- payment_events, no outbox row, no idempotency record; its entries carry no payment_id. The ids (posting, two
-- entries) come from the caller, which makes them with core.ids.new_id (UUIDv7) like the API, so that the
-- indexes see the same insertion pattern.
-- Errors carry SQLSTATEs the floor app maps to HTTP statuses: no_data_found (P0002) for a missing or system
-- account, check_violation (23514) for insufficient funds, object_not_in_prerequisite_state (55000) for a frozen or
-- closed account, invalid_parameter_value (22023) for the rest.
CREATE OR REPLACE FUNCTION bench_floor_transfer(src uuid, dst uuid, minor bigint, code text, posting uuid,
                                                src_entry uuid, dst_entry uuid)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := now();
    r record;
    s record;
    d record;
    found_src boolean := false;
    found_dst boolean := false;
    src_balance bigint; dst_balance bigint; src_hash bytea; dst_hash bytea;
BEGIN
    IF src = dst THEN
        RAISE EXCEPTION 'source and destination must be different accounts' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF minor <= 0 THEN
        RAISE EXCEPTION 'amount must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR r IN SELECT id, tenant_id, kind, currency AS cur, balance, version, last_entry_hash, status,
                    overdraft_limit
             FROM accounts WHERE id = ANY (ARRAY[src, dst]) ORDER BY id FOR UPDATE LOOP
        IF r.id = src THEN s := r; found_src := true; ELSE d := r; found_dst := true; END IF;
    END LOOP;
    -- one test per IF: a record never assigned (an account not found) cannot be read, even behind an OR
    IF NOT found_src THEN
        RAISE EXCEPTION 'account % not found', src USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT found_dst THEN
        RAISE EXCEPTION 'account % not found', dst USING ERRCODE = 'no_data_found';
    END IF;
    IF s.kind <> 'user' THEN
        RAISE EXCEPTION 'account % not found', src USING ERRCODE = 'no_data_found';
    END IF;
    IF d.kind <> 'user' OR d.tenant_id <> s.tenant_id THEN
        RAISE EXCEPTION 'account % not found', dst USING ERRCODE = 'no_data_found';
    END IF;
    IF s.status <> 'active' OR d.status <> 'active' THEN  -- frozen or closed (API.md §3)
        RAISE EXCEPTION 'account frozen or closed' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF s.cur <> code OR d.cur <> code THEN
        RAISE EXCEPTION 'the accounts do not hold %', code USING ERRCODE = 'invalid_parameter_value';
    END IF;
    src_balance := s.balance - minor;
    dst_balance := d.balance + minor;
    IF src_balance < -s.overdraft_limit THEN
        RAISE EXCEPTION 'account % has insufficient funds', src USING ERRCODE = 'check_violation';
    END IF;
    IF dst_balance > 4611686018427387904 THEN  -- core.ledger.MAX_BALANCE, 2**62
        RAISE EXCEPTION 'would take a balance beyond the supported range' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    src_hash := ledger_entry_hash(s.last_entry_hash, src_entry, src, NULL, 'debit', -minor, src_balance, code, at);
    dst_hash := ledger_entry_hash(d.last_entry_hash, dst_entry, dst, NULL, 'credit', minor, dst_balance, code, at);
    UPDATE accounts a SET balance = v.balance, version = v.version, updated_at = at, last_entry_hash = v.hash
    FROM (VALUES (src, src_balance, s.version + 1, src_hash), (dst, dst_balance, d.version + 1, dst_hash))
         v(id, balance, version, hash)
    WHERE a.id = v.id;
    INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, seq, type, amount, balance_after,
                                      currency, created_at, hash)
    VALUES (src_entry, s.tenant_id, src, posting, s.version + 1, 'debit', -minor, src_balance, code, at, src_hash),
           (dst_entry, s.tenant_id, dst, posting, d.version + 1, 'credit', minor, dst_balance, code, at, dst_hash);
    RETURN at;
END $$;
