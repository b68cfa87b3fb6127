-- API.md §6: a failed payment says why in a stable code (declined, retries_exhausted, ...), beside its reason.

ALTER TABLE payments ADD COLUMN failure_code text
    CHECK (failure_code IS NULL OR failure_code IN ('declined', 'retries_exhausted', 'provider_unavailable'));
