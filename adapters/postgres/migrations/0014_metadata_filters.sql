-- `?metadata[key]=value` on the lists of accounts and payments (API.md §1): GIN indexes over the metadata
-- (jsonb_path_ops: containment, `@>`, only). Partial: rows without metadata, most transfers among them, never
-- enter them, so a write without metadata pays nothing; the list queries repeat the predicate.

CREATE INDEX accounts_metadata ON accounts USING gin (metadata jsonb_path_ops)
    WHERE kind = 'user' AND metadata <> '{}'::jsonb;
CREATE INDEX payments_metadata ON payments USING gin (metadata jsonb_path_ops) WHERE metadata <> '{}'::jsonb;
