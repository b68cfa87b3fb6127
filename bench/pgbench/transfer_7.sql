-- The transfer as SEVEN client statements (seven round trips), writing the rows the API writes
-- for POST /api/v1/transfers: both balances, the payment, its two events, two ledger entries,
-- the outbox row and the idempotency record.
--   1 BEGIN
--   2 UPDATE the account with the lower id   (source: ... AND balance >= amount)
--   3 UPDATE the other account
--   4 INSERT the payment  + its 2 payment_events   (one statement: a data-modifying WITH)
--   5 INSERT the 2 ledger entries                   (one statement, two rows)
--   6 INSERT the outbox row + the idempotency_keys row (one statement: a data-modifying WITH)
--   7 COMMIT
-- Each UPDATE also moves the account's last_entry_hash on: the entry's hash, computed in SQL by
-- ledger_entry_hash (migrations 0010, 0017) where the API computes it in Python.
-- Updating the lower id first is the API's lock order (no deadlock). It does NOT do the API's
-- three reads (advisory lock, idempotency lookup, SELECT ... FOR UPDATE): see transfer_api.sql.
-- A source without funds makes \gset fail and pgbench abort the client; bench_seed's
-- balances are large enough that it never happens.
--
--   pgbench -n -M prepared -f bench/pgbench/transfer_7.sql -D accounts=1000 -D hot=0 -c 32 -j 2 -T 10 "$DB"
--   hot=1: every transfer leaves account 1 (the hot source); destinations are uniform.
\set amount random(1, 100)
\if :hot
\set src 1
\set dst random(2, :accounts)
\else
\set src random(1, :accounts)
\set dst random(1, :accounts - 1)
\set dst CASE WHEN :dst >= :src THEN :dst + 1 ELSE :dst END
\endif
BEGIN;
\if :src < :dst
WITH g AS (SELECT gen_random_uuid() AS payment, gen_random_uuid() AS entry)
UPDATE accounts SET balance = balance - :amount, version = version + 1, updated_at = now(),
    last_entry_hash = ledger_entry_hash(last_entry_hash, g.entry, id, g.payment, 'debit', -:amount::bigint,
                                        balance - :amount, 'USD', now())
FROM g WHERE id = bench_account(:src) AND balance >= :amount
RETURNING balance AS src_balance, version AS src_version, last_entry_hash AS src_hash, g.entry AS src_entry,
          g.payment AS payment \gset
WITH g AS (SELECT gen_random_uuid() AS entry)
UPDATE accounts SET balance = balance + :amount, version = version + 1, updated_at = now(),
    last_entry_hash = ledger_entry_hash(last_entry_hash, g.entry, id, :payment::uuid, 'credit', :amount::bigint,
                                        balance + :amount, 'USD', now())
FROM g WHERE id = bench_account(:dst)
RETURNING balance AS dst_balance, version AS dst_version, last_entry_hash AS dst_hash, g.entry AS dst_entry \gset
\else
WITH g AS (SELECT gen_random_uuid() AS payment, gen_random_uuid() AS entry)
UPDATE accounts SET balance = balance + :amount, version = version + 1, updated_at = now(),
    last_entry_hash = ledger_entry_hash(last_entry_hash, g.entry, id, g.payment, 'credit', :amount::bigint,
                                        balance + :amount, 'USD', now())
FROM g WHERE id = bench_account(:dst)
RETURNING balance AS dst_balance, version AS dst_version, last_entry_hash AS dst_hash, g.entry AS dst_entry,
          g.payment AS payment \gset
WITH g AS (SELECT gen_random_uuid() AS entry)
UPDATE accounts SET balance = balance - :amount, version = version + 1, updated_at = now(),
    last_entry_hash = ledger_entry_hash(last_entry_hash, g.entry, id, :payment::uuid, 'debit', -:amount::bigint,
                                        balance - :amount, 'USD', now())
FROM g WHERE id = bench_account(:src) AND balance >= :amount
RETURNING balance AS src_balance, version AS src_version, last_entry_hash AS src_hash, g.entry AS src_entry \gset
\endif
WITH p AS (
    INSERT INTO payments (id, tenant_id, payment_type, status, source_account_id, destination_account_id, amount,
                          currency, metadata, version, correlation_id, created_at, updated_at, completed_at)
    VALUES (:payment::uuid, bench_tenant(), 'internal_transfer', 'completed', bench_account(:src),
            bench_account(:dst), :amount, 'USD', '{}', 1, replace(:payment::text, '-', ''), now(), now(), now())
    RETURNING id, correlation_id)
INSERT INTO payment_events (id, tenant_id, payment_id, sequence, type, data, correlation_id, created_at)
SELECT gen_random_uuid(), bench_tenant(), p.id, e.sequence, e.type, bench_event_data(e.status, now()),
       p.correlation_id, now()
FROM p, (VALUES (0, 'payment.created', 'pending'), (1, 'payment.completed', 'completed')) e(sequence, type, status);
INSERT INTO account_transactions (id, tenant_id, account_id, posting_id, payment_id, seq, type, amount,
                                  balance_after, currency, created_at, hash)
SELECT e.id, bench_tenant(), e.account, p.posting, :payment::uuid, e.seq, e.type, e.amount, e.balance_after, 'USD',
       now(), e.hash
FROM (SELECT gen_random_uuid() AS posting) p,
     LATERAL (VALUES (:src_entry::uuid, bench_account(:src), :src_version::bigint, 'debit', -:amount::bigint,
                      :src_balance::bigint, :src_hash::bytea),
                     (:dst_entry::uuid, bench_account(:dst), :dst_version::bigint, 'credit', :amount::bigint,
                      :dst_balance::bigint, :dst_hash::bytea))
             e(id, account, seq, type, amount, balance_after, hash);
WITH v AS (
    SELECT bench_payment_view(:payment::uuid, bench_account(:src), bench_account(:dst), :amount, now()) AS view),
o AS (
    INSERT INTO outbox (id, tenant_id, topic, aggregate_id, payload, correlation_id, created_at)
    SELECT gen_random_uuid(), bench_tenant(), 'transfer.completed', :payment::uuid, v.view,
           replace(:payment::text, '-', ''), now()
    FROM v)
INSERT INTO idempotency_keys (tenant_id, key, fingerprint, status_code, response_body, created_at, expires_at)
SELECT bench_tenant(), gen_random_uuid()::text, sha256(convert_to(v.view::text, 'UTF8')), 201,
       convert_to(v.view::text, 'UTF8'), now(), now() + interval '24 hours'
FROM v;
COMMIT;
