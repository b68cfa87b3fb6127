-- Objects the pgbench scripts need, created in the bench database after the migrations.
--
--   psql "$DB" -f bench/pgbench/setup.sql
--   psql "$DB" -c "SELECT bench_seed(1000, 100000000000)"   -- 1000 accounts of 1,000,000,000.00 USD
--
-- The pgbench tenant and its accounts have deterministic ids so that a script can turn
-- pgbench's integer random numbers into account ids on the server: account n is
-- bench_account(n). Ids are ordered like n, so "lower n first" is "lower id first",
-- the order in which the API locks accounts.

CREATE OR REPLACE FUNCTION bench_tenant() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'b0000000-0000-4000-8000-000000000000'::uuid $$;

CREATE OR REPLACE FUNCTION bench_account(n bigint) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ('b0000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$;

-- A user account per n in 1..accounts, each funded with `balance` minor units from the tenant's
-- funding account by one balanced posting, as POST /accounts with an initial_balance does. Every entry
-- carries its hash (ledger_entry_hash, migrations 0010 and 0017): each user account's one entry chains from the
-- genesis value, the funding account's 1..accounts entries chain one after the other.
CREATE OR REPLACE FUNCTION bench_seed(accounts integer, balance bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t uuid := bench_tenant();
    funding uuid := 'b0000000-0000-4000-8000-ffffffffffff';
    posting uuid := gen_random_uuid();
    at timestamptz := now();
    genesis bytea := decode(repeat('0', 64), 'hex');
BEGIN
    INSERT INTO tenants (id, name, created_at) VALUES (t, 'pgbench', at);
    INSERT INTO accounts (id, tenant_id, kind, currency, balance, version, created_at, updated_at)
    VALUES (funding, t, 'funding', 'USD', -balance * accounts, accounts, at, at);
    INSERT INTO accounts (id, tenant_id, kind, user_id, currency, balance, version, created_at, updated_at)
    SELECT bench_account(n), t, 'user', 'pgbench-' || n, 'USD', balance, 1, at, at
    FROM generate_series(1, accounts) n;
    -- the funding side: entry n follows entry n - 1
    WITH RECURSIVE chain (n, id, hash) AS (
        SELECT 0, NULL::uuid, genesis
        UNION ALL
        SELECT c.n + 1, e.id, ledger_entry_hash(c.hash, e.id, funding, NULL, 'debit', -balance,
                                                -balance * (c.n + 1), 'USD', at)
        FROM chain c CROSS JOIN LATERAL (SELECT gen_random_uuid() AS id) e WHERE c.n < accounts)
    INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, seq, type, amount, balance_after,
                                      currency, created_at, hash)
    SELECT id, t, funding, posting, n, 'debit', -balance, -balance * n, 'USD', at, hash FROM chain WHERE n > 0;
    INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, seq, type, amount, balance_after,
                                      currency, created_at, hash)
    SELECT e.id, t, e.account, posting, 1, 'credit', balance, balance, 'USD', at,
           ledger_entry_hash(genesis, e.id, e.account, NULL, 'credit', balance, balance, 'USD', at)
    FROM (SELECT gen_random_uuid() AS id, bench_account(n) AS account FROM generate_series(1, accounts) n) e;
    UPDATE accounts a SET last_entry_hash = x.hash
    FROM account_transactions x WHERE x.tenant_id = t AND x.account_id = a.id AND x.seq = a.version;
    INSERT INTO bench_bare_accounts SELECT bench_account(n), balance FROM generate_series(1, accounts) n;
END $$;

-- The payment view (API.md §6) the API stores in the outbox row and as the idempotent response.
CREATE OR REPLACE FUNCTION bench_payment_view(payment uuid, src uuid, dst uuid, amount bigint, at timestamptz)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'id', payment, 'payment_type', 'internal_transfer', 'status', 'completed',
        'source_account_id', src, 'destination_account_id', dst,
        'amount', to_char(amount / 100.0, 'FM9999999999999990.00'), 'currency', 'USD',
        'provider', NULL, 'provider_reference', NULL, 'refunded_amount', '0.00', 'failure_reason', NULL,
        'description', NULL, 'metadata', '{}'::jsonb,
        'created_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'completed_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$$;

-- The event snapshot (core.payments.Payment.snapshot) recorded for payment.created / payment.completed.
CREATE OR REPLACE FUNCTION bench_event_data(status text, at timestamptz) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'status', status, 'refunded_amount', 0, 'provider_reference', NULL, 'failure_reason', NULL,
        'updated_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'completed_at', CASE WHEN status = 'completed'
                             THEN to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END)
$$;

-- The whole transfer in one call (one round trip): the same rows as transfer_7.sql, the same
-- lock order (lower account id first), each entry's hash computed in the UPDATE that locks its account
-- (the API computes it in Python). Raises check_violation on insufficient funds.
CREATE OR REPLACE FUNCTION bench_transfer(src_n bigint, dst_n bigint, amount bigint) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    t uuid := bench_tenant();
    src uuid := bench_account(src_n);
    dst uuid := bench_account(dst_n);
    payment uuid := gen_random_uuid();
    at timestamptz := now();
    correlation text := replace(gen_random_uuid()::text, '-', '');
    src_entry uuid := gen_random_uuid();
    dst_entry uuid := gen_random_uuid();
    src_balance bigint; src_version bigint; dst_balance bigint; dst_version bigint; src_hash bytea; dst_hash bytea;
    view jsonb;
BEGIN
    IF src_n < dst_n THEN
        UPDATE accounts SET balance = balance - amount, version = version + 1, updated_at = at,
            last_entry_hash = ledger_entry_hash(last_entry_hash, src_entry, id, payment, 'debit', -amount,
                                                balance - amount, 'USD', at)
        WHERE id = src AND balance >= amount
        RETURNING balance, version, last_entry_hash INTO src_balance, src_version, src_hash;
        UPDATE accounts SET balance = balance + amount, version = version + 1, updated_at = at,
            last_entry_hash = ledger_entry_hash(last_entry_hash, dst_entry, id, payment, 'credit', amount,
                                                balance + amount, 'USD', at)
        WHERE id = dst RETURNING balance, version, last_entry_hash INTO dst_balance, dst_version, dst_hash;
    ELSE
        UPDATE accounts SET balance = balance + amount, version = version + 1, updated_at = at,
            last_entry_hash = ledger_entry_hash(last_entry_hash, dst_entry, id, payment, 'credit', amount,
                                                balance + amount, 'USD', at)
        WHERE id = dst RETURNING balance, version, last_entry_hash INTO dst_balance, dst_version, dst_hash;
        UPDATE accounts SET balance = balance - amount, version = version + 1, updated_at = at,
            last_entry_hash = ledger_entry_hash(last_entry_hash, src_entry, id, payment, 'debit', -amount,
                                                balance - amount, 'USD', at)
        WHERE id = src AND balance >= amount
        RETURNING balance, version, last_entry_hash INTO src_balance, src_version, src_hash;
    END IF;
    IF src_balance IS NULL THEN
        RAISE EXCEPTION 'insufficient funds' USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO payments (id, tenant_id, payment_type, status, source_account_id, destination_account_id, amount,
                          currency, metadata, version, correlation_id, created_at, updated_at, completed_at)
    VALUES (payment, t, 'internal_transfer', 'completed', src, dst, amount, 'USD', '{}', 1, correlation, at, at, at);
    INSERT INTO payment_events (id, tenant_id, payment_id, sequence, type, data, correlation_id, created_at)
    VALUES (gen_random_uuid(), t, payment, 0, 'payment.created', bench_event_data('pending', at), correlation, at),
           (gen_random_uuid(), t, payment, 1, 'payment.completed', bench_event_data('completed', at), correlation, at);
    INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, payment_id, seq, type, amount,
                                      balance_after, currency, created_at, hash)
    SELECT e.id, t, e.account, p.posting, payment, e.seq, e.type, e.amount, e.balance_after, 'USD', at, e.hash
    FROM (SELECT gen_random_uuid() AS posting) p,
         LATERAL (VALUES (src_entry, src, src_version, 'debit', -amount, src_balance, src_hash),
                         (dst_entry, dst, dst_version, 'credit', amount, dst_balance, dst_hash))
                 e(id, account, seq, type, amount, balance_after, hash);
    view := bench_payment_view(payment, src, dst, amount, at);
    INSERT INTO outbox (id, tenant_id, topic, aggregate_id, payload, correlation_id, created_at)
    VALUES (gen_random_uuid(), t, 'transfer.completed', payment, view, correlation, at);
    INSERT INTO idempotency_keys (tenant_id, key, fingerprint, status_code, response_body, created_at, expires_at)
    VALUES (t, gen_random_uuid()::text, sha256(convert_to(view::text, 'UTF8')), 201, convert_to(view::text, 'UTF8'),
            at, at + interval '24 hours');
    RETURN payment;
END $$;

-- Calibration only (calibrate_7_bare.sql): the issue's bare seven statements, whose inserts go to
-- tables without foreign keys, checks, triggers or jsonb (and update bench_bare_accounts, so
-- the ledger stays consistent), to compare this machine with the
-- numbers quoted in the issue (~1,250 tps at 32 clients).
CREATE TABLE IF NOT EXISTS bench_bare_accounts (id uuid PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE IF NOT EXISTS bench_bare_payments (id uuid PRIMARY KEY, source uuid NOT NULL, destination uuid NOT NULL,
                                                amount bigint NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS bench_bare_entries (id uuid PRIMARY KEY, payment uuid NOT NULL, account uuid NOT NULL,
                                               amount bigint NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS bench_bare_outbox (id uuid PRIMARY KEY, payment uuid NOT NULL, created_at timestamptz NOT NULL);
