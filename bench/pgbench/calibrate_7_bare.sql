-- Calibration: the issue's seven statements in their barest form (BEGIN; UPDATE source; UPDATE
-- destination; INSERT payment; INSERT two entries; INSERT outbox; COMMIT), on the
-- bench_bare_* tables of setup.sql (a primary key each, nothing else). Not the API's work: it only
-- tells whether this machine is the kind the issue measured (~1,250 tps at 32 clients).
--
--   pgbench -n -M prepared -f bench/pgbench/calibrate_7_bare.sql -D accounts=1000 -D hot=0 -c 32 -j 2 -T 10 "$DB"
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
UPDATE bench_bare_accounts SET balance = balance - :amount WHERE id = bench_account(:src) AND balance >= :amount
RETURNING gen_random_uuid() AS payment \gset
UPDATE bench_bare_accounts SET balance = balance + :amount WHERE id = bench_account(:dst);
\else
UPDATE bench_bare_accounts SET balance = balance + :amount WHERE id = bench_account(:dst);
UPDATE bench_bare_accounts SET balance = balance - :amount WHERE id = bench_account(:src) AND balance >= :amount
RETURNING gen_random_uuid() AS payment \gset
\endif
INSERT INTO bench_bare_payments VALUES (:payment::uuid, bench_account(:src), bench_account(:dst), :amount, now());
INSERT INTO bench_bare_entries VALUES (gen_random_uuid(), :payment::uuid, bench_account(:src), -:amount::bigint, now()),
                                      (gen_random_uuid(), :payment::uuid, bench_account(:dst), :amount, now());
INSERT INTO bench_bare_outbox VALUES (gen_random_uuid(), :payment::uuid, now());
COMMIT;
