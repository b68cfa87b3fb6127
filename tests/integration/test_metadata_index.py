"""The metadata filters of the account and payment lists (API.md §1) are served by their GIN indexes
(migration 0014), not by reading every row of the tenant: checked on the plan PostgreSQL makes for a tenant of
5,000 accounts and 5,000 payments, a few with the metadata asked for (written and rolled back in one
transaction, so nothing stays behind)."""

from __future__ import annotations

import pytest

from adapters.postgres import accounts, payments
from app.bootstrap import Services
from core.ids import new_id

pytestmark = pytest.mark.timeout(60)

ROWS = """
INSERT INTO tenants (id, name, created_at) VALUES ($1, 'metadata-index-' || $1::text, now());
INSERT INTO accounts (id, tenant_id, kind, user_id, currency, created_at, updated_at, metadata)
SELECT gen_random_uuid(), $1, 'user', 'u' || g, 'USD', now(), now(),
       CASE WHEN g % 1000 = 0 THEN '{"tier": "gold"}' WHEN g % 2 = 0 THEN '{"tier": "silver"}' ELSE '{}' END::jsonb
FROM generate_series(1, 5000) g;
INSERT INTO payments (id, tenant_id, payment_type, status, source_account_id, amount, currency, provider, metadata,
                      created_at, updated_at)
SELECT gen_random_uuid(), $1, 'external_payment', 'completed', (SELECT id FROM accounts WHERE tenant_id = $1 LIMIT 1),
       100, 'USD', 'stripe',
       CASE WHEN g % 1000 = 0 THEN '{"order": "7"}' WHEN g % 2 = 0 THEN '{"order": "8"}' ELSE '{}' END::jsonb,
       now(), now()
FROM generate_series(1, 5000) g;
ANALYZE accounts; ANALYZE payments;
"""


async def test_metadata_filters_use_their_indexes(services: Services) -> None:
    tenant = new_id()
    async with services.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(ROWS.replace("$1", f"'{tenant}'::uuid"))
            for sql, args, index in (
                (accounts.LIST_BY_METADATA, (tenant, None, None, None, None, 21, {"tier": "gold"}),
                 "accounts_metadata"),
                (payments.LIST_BY_METADATA, (tenant, *[None] * 8, 21, {"order": "7"}), "payments_metadata"),
            ):
                plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
                assert index in plan, plan
                assert len(await conn.fetch(sql, *args)) == 5  # and the answer is right
        finally:
            await transaction.rollback()
