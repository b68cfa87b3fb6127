-- The same transfer as transfer_7.sql (same rows, same lock order) in ONE client statement:
-- the plpgsql function bench_transfer() from setup.sql, one round trip, autocommit.
--
--   pgbench -n -M prepared -f bench/pgbench/transfer_fn.sql -D accounts=1000 -D hot=0 -c 32 -j 2 -T 10 "$DB"
\set amount random(1, 100)
\if :hot
\set src 1
\set dst random(2, :accounts)
\else
\set src random(1, :accounts)
\set dst random(1, :accounts - 1)
\set dst CASE WHEN :dst >= :src THEN :dst + 1 ELSE :dst END
\endif
SELECT bench_transfer(:src, :dst, :amount);
