-- `payments keys list` (API.md §1): each key's last four characters (its prefix is already kept) and when it last
-- authenticated a request. Keys made before this migration have no last4: only their hash was kept.

ALTER TABLE api_keys
    ADD COLUMN last4 text CHECK (length(last4) = 4),
    ADD COLUMN last_used_at timestamptz;

CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at);
