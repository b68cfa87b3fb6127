"""Gauges read from PostgreSQL when `/metrics` is scraped: the outbox backlog, the dead letter queue, the
webhook deliveries waiting, what holds the events feed back and the reconciliations' mismatches. Bounded:
capped counts over partial indexes, a week of reconciliations, a short timeout."""

from __future__ import annotations

import asyncio

import asyncpg
from loguru import logger
from prometheus_client.core import GaugeMetricFamily, Metric

from core.payments import PROVIDERS
from core.reconciliation import MISMATCHES

#: Counts saturate here: beyond it the number matters less than that it is large (and counting costs more).
COUNT_CAP = 1_000_000

OUTBOX = f"""SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT {COUNT_CAP}) AS o)
         AS backlog,
       coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox WHERE published_at IS NULL)), 0)
         AS oldest,
       (SELECT count(*) FROM (SELECT 1 FROM dead_letters WHERE retried_at IS NULL LIMIT {COUNT_CAP}) AS d) AS dlq,
       (SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' LIMIT {COUNT_CAP}) AS w)
         AS pending_webhooks,
       coalesce(extract(epoch FROM now() - (SELECT min(xact_start) FROM pg_stat_activity
                                            WHERE datname = current_database() AND backend_xid IS NOT NULL)), 0)
         AS feed_held_back"""

# Per provider, the mismatches of each tenant's latest completed reconciliation (by day) of the last week, summed.
RECONCILED = """SELECT provider, sum(missing_in_ledger) AS missing_in_ledger,
       sum(missing_at_provider) AS missing_at_provider, sum(amount_mismatch) AS amount_mismatch
  FROM (SELECT DISTINCT ON (tenant_id, provider) provider, missing_in_ledger, missing_at_provider, amount_mismatch
          FROM reconciliations WHERE status = 'completed' AND day >= current_date - 7
         ORDER BY tenant_id, provider, day DESC, created_at DESC) AS latest
 GROUP BY provider"""
MISMATCHES_FAMILY = "reconciliation_mismatches"
_MISMATCHES_HELP = ("Items that did not match in each tenant's latest reconciliation (of the last week), by provider "
                    "and result (missing_in_ledger, missing_at_provider, amount_mismatch), summed over tenants.")

_HELP = {
    "outbox_backlog": "Outbox rows committed but not yet published to the workers.",
    "outbox_oldest_unpublished_age_seconds": "Age of the oldest unpublished outbox row (0 when none).",
    "dlq_size": "Dead letters (payments and refunds whose processing failed) not yet retried.",
    "webhook_deliveries_pending": "Webhook deliveries still pending (not yet succeeded or failed).",
    "events_feed_held_back_seconds": "Age of the oldest open transaction of the database that holds a transaction "
                                     "id: events committed since it began wait for it to end before the events "
                                     "feed shows them (0 when none).",
}


async def database_gauges(pool: asyncpg.Pool, *, within: float = 1.0) -> list[Metric]:
    """The gauges, each present; without a sample when the database did not answer `within` seconds."""
    values: dict[str, float] = {}
    try:
        values = await asyncio.wait_for(_read(pool), within)
    except Exception as error:  # a scrape must answer even while the database is down
        logger.debug("metrics: could not read the database gauges: {!r}", error)
    families: list[Metric] = []
    for name, documentation in _HELP.items():
        family = GaugeMetricFamily(name, documentation, labels=[])
        if name in values:
            family.add_metric([], values[name])
        families.append(family)
    mismatches = GaugeMetricFamily(MISMATCHES_FAMILY, _MISMATCHES_HELP, labels=["provider", "result"])
    if values:  # every provider and result, 0 where nothing was reconciled or nothing mismatched
        for provider in PROVIDERS:
            for result in MISMATCHES:
                mismatches.add_metric([provider, result.value], values.get(f"{provider}|{result.value}", 0.0))
    families.append(mismatches)
    return families


async def _read(pool: asyncpg.Pool) -> dict[str, float]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(OUTBOX)
        try:
            reconciled = await conn.fetch(RECONCILED)
        except asyncpg.UndefinedTableError:  # a database not migrated to 0009 yet: the other gauges still count
            reconciled = []
    values = {"outbox_backlog": float(row["backlog"]), "outbox_oldest_unpublished_age_seconds": float(row["oldest"]),
              "dlq_size": float(row["dlq"]), "webhook_deliveries_pending": float(row["pending_webhooks"]),
              "events_feed_held_back_seconds": max(0.0, float(row["feed_held_back"]))}
    for line in reconciled:
        values |= {f"{line['provider']}|{result.value}": float(line[result.value]) for result in MISMATCHES}
    return values
