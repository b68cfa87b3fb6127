-- The API's own statement sequence for POST /api/v1/transfers (adapters/postgres/*.py as of
-- commit 39877f0), so that pgbench shows the database's ceiling for exactly what the API sends:
-- FIVE statements, five round trips (since 478a823 the pool's reset on release sends nothing
-- after a committed transaction):
--   1 BEGIN
--   2 SELECT pg_try_advisory_xact_lock(key), the stored idempotency record    (misc.CLAIM)
--   3 SELECT ... FROM accounts ... ORDER BY id FOR UPDATE   (accounts.LOCK; here folded into one row for \gset,
--     with the two entries' hashes: ledger_entry_hash in SQL stands in for the API's Python, core/hash_chain.py)
--   4 WITH w0 UPDATE accounts, w1 INSERT payments, w2 INSERT payment_events, w3 INSERT account_transactions,
--     w4 INSERT outbox, w5 INSERT idempotency_keys SELECT 1  (uow.compose)
--   5 COMMIT
--
--   pgbench -n -M prepared -f bench/pgbench/transfer_api.sql -D accounts=1000 -D hot=0 -c 32 -j 2 -T 10 "$DB"
\set amount random(1, 100)
\set key random(1, 9000000000000000000)
\if :hot
\set src 1
\set dst random(2, :accounts)
\else
\set src random(1, :accounts)
\set dst random(1, :accounts - 1)
\set dst CASE WHEN :dst >= :src THEN :dst + 1 ELSE :dst END
\endif
BEGIN;
SELECT pg_try_advisory_xact_lock(:key::bigint) AS locked, k.fingerprint, k.status_code, k.response_body,
       k.created_at, k.expires_at
FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.tenant_id = bench_tenant() AND k.key = 'pgb-' || :key;
WITH locked AS (
    SELECT id, tenant_id, kind, user_id, currency, balance, version, status, metadata, created_at, updated_at,
           last_entry_hash
    FROM accounts WHERE tenant_id = bench_tenant() AND id = ANY(ARRAY[bench_account(:src), bench_account(:dst)])
    ORDER BY id FOR UPDATE)
SELECT s.balance AS src_balance, s.version AS src_version, d.balance AS dst_balance, d.version AS dst_version,
       g.payment, g.at, g.src_entry, g.dst_entry,
       ledger_entry_hash(s.last_entry_hash, g.src_entry, s.id, g.payment, 'debit', -:amount::bigint,
                         s.balance - :amount, 'USD', g.at) AS src_hash,
       ledger_entry_hash(d.last_entry_hash, g.dst_entry, d.id, g.payment, 'credit', :amount::bigint,
                         d.balance + :amount, 'USD', g.at) AS dst_hash
FROM locked s, locked d,
     (SELECT gen_random_uuid() AS payment, gen_random_uuid() AS src_entry, gen_random_uuid() AS dst_entry,
             now() AS at) g
WHERE s.id = bench_account(:src) AND d.id = bench_account(:dst) \gset
WITH w0 AS (
    UPDATE accounts a SET balance = v.balance, version = v.version, updated_at = v.updated_at,
                          last_entry_hash = v.last_entry_hash
    FROM unnest(ARRAY[bench_account(:src), bench_account(:dst)],
                ARRAY[:src_balance::bigint - :amount, :dst_balance::bigint + :amount],
                ARRAY[:src_version::bigint + 1, :dst_version::bigint + 1],
                ARRAY[:at::timestamptz, :at::timestamptz], ARRAY[:src_hash::bytea, :dst_hash::bytea])
         AS v(id, balance, version, updated_at, last_entry_hash)
    WHERE a.id = v.id),
w1 AS (
    INSERT INTO payments (id, tenant_id, payment_type, status, source_account_id, destination_account_id, amount,
                          currency, provider, provider_reference, refunded_amount, failure_reason, description,
                          metadata, version, correlation_id, created_at, updated_at, completed_at)
    SELECT * FROM unnest(ARRAY[:payment::uuid], ARRAY[bench_tenant()], ARRAY['internal_transfer'], ARRAY['completed'],
                         ARRAY[bench_account(:src)], ARRAY[bench_account(:dst)], ARRAY[:amount::bigint], ARRAY['USD'],
                         ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[0::bigint], ARRAY[NULL::text], ARRAY[NULL::text],
                         ARRAY['{}'::jsonb], ARRAY[1::bigint], ARRAY['pgb-' || :key], ARRAY[:at::timestamptz],
                         ARRAY[:at::timestamptz], ARRAY[:at::timestamptz])),
w2 AS (
    INSERT INTO payment_events (id, tenant_id, payment_id, sequence, type, data, correlation_id, created_at)
    SELECT * FROM unnest(ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY[bench_tenant(), bench_tenant()],
                         ARRAY[:payment::uuid, :payment::uuid], ARRAY[0, 1], ARRAY['payment.created', 'payment.completed'],
                         ARRAY[bench_event_data('pending', :at::timestamptz), bench_event_data('completed', :at::timestamptz)],
                         ARRAY['pgb-' || :key, 'pgb-' || :key], ARRAY[:at::timestamptz, :at::timestamptz])),
w3 AS (
    INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, payment_id, refund_id, seq, type, amount,
                                      balance_after, currency, created_at, hash)
    SELECT e.id, e.tenant_id, e.account_id, p.posting, e.payment_id, e.refund_id, e.seq, e.type, e.amount,
           e.balance_after, e.currency, e.created_at, e.hash
    FROM (SELECT gen_random_uuid() AS posting) p,
         unnest(ARRAY[:src_entry::uuid, :dst_entry::uuid], ARRAY[bench_tenant(), bench_tenant()],
                ARRAY[bench_account(:src), bench_account(:dst)], ARRAY[:payment::uuid, :payment::uuid],
                ARRAY[NULL::uuid, NULL::uuid], ARRAY[:src_version::bigint + 1, :dst_version::bigint + 1],
                ARRAY['debit', 'credit'], ARRAY[-:amount::bigint, :amount::bigint],
                ARRAY[:src_balance::bigint - :amount, :dst_balance::bigint + :amount], ARRAY['USD', 'USD'],
                ARRAY[:at::timestamptz, :at::timestamptz], ARRAY[:src_hash::bytea, :dst_hash::bytea])
            AS e(id, tenant_id, account_id, payment_id, refund_id, seq, type, amount, balance_after, currency, created_at,
                 hash)),
w4 AS (
    INSERT INTO outbox (id, tenant_id, topic, aggregate_id, payload, correlation_id, created_at)
    SELECT * FROM unnest(ARRAY[gen_random_uuid()], ARRAY[bench_tenant()], ARRAY['transfer.completed'],
                         ARRAY[:payment::uuid],
                         ARRAY[bench_payment_view(:payment::uuid, bench_account(:src), bench_account(:dst), :amount,
                                                  :at::timestamptz)],
                         ARRAY['pgb-' || :key], ARRAY[:at::timestamptz])),
w5 AS (
    INSERT INTO idempotency_keys (tenant_id, key, fingerprint, status_code, response_body, created_at, expires_at)
    VALUES (bench_tenant(), 'pgb-' || :key, sha256(convert_to('pgb-' || :key, 'UTF8')), 201,
            convert_to(bench_payment_view(:payment::uuid, bench_account(:src), bench_account(:dst), :amount,
                                          :at::timestamptz)::text, 'UTF8'),
            :at::timestamptz, :at::timestamptz + interval '24 hours'))
SELECT 1;
COMMIT;
