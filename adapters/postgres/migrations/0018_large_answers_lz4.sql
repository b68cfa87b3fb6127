-- The stored answers of large requests (issue 12, batches): `batches.view` and `idempotency_keys.response_body`
-- hold a batch's whole answer (~43 kB for 100 transfers), which PostgreSQL compresses on insert. With its
-- default method, pglz, that took ~1 ms a value, twice per batch (the batch, its Idempotency-Key's record), inside
-- the batch's unit of work, its accounts locked; lz4 takes a tenth of it, for much the same size. Small values
-- (a single transfer's answer, under ~2 kB) are never compressed, so nothing else changes; values already
-- stored stay as they are (both methods read back the same). A server built without lz4 keeps pglz.

DO $$
BEGIN
    ALTER TABLE batches ALTER COLUMN view SET COMPRESSION lz4;
    ALTER TABLE idempotency_keys ALTER COLUMN response_body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: large stored answers stay compressed with pglz';
END $$;
