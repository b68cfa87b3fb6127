"""The mock provider server's store: records on disk (SQLite), in order, by tag; counts; per-key locks forgotten."""

from __future__ import annotations

import asyncio
import os

from adapters.providers.mock_state import MockState, Record
from adapters.providers.mock_store import Counts, Store, Table


def record(key: str, lookup: str | None = None, *, provider: str = "stripe") -> Record:
    return Record(provider, f"ch_{key}", key, 100, "usd", "succeeded", {"k": key}, "2026-12-06T00:00:00+00:00",
                  (100, "usd"), lookup=lookup, answer=(200, {"id": f"ch_{key}", "nested": [1, {"a": "b"}]}))


def test_a_table_keeps_pickled_values_by_tuple_key_in_the_order_written() -> None:
    table: Table[Record] = Table(Store(), "charge")
    for key in ("b", "a\x1fz", 'c"'):
        table[("stripe", key)] = record(key)
    assert table.get(("stripe", "a")) is None
    assert table[("stripe", "a\x1fz")] == record("a\x1fz")
    assert [key for key, _ in table.items()] == [("stripe", "b"), ("stripe", "a\x1fz"), ("stripe", 'c"')]
    assert [r.id for r in table.values()] == ["ch_b", "ch_a\x1fz", 'ch_c"']


def test_spaces_of_one_store_do_not_see_each_other_and_clear_empties_all() -> None:
    store = Store()
    charges, refunds, counts = Table[Record](store, "charge"), Table[Record](store, "refund"), Counts(store, "n")
    charges[("stripe", "k")] = record("k")
    counts[("charge", "stripe", "k")] += 2
    counts[("charge", "stripe", "k")] += 1
    assert refunds.get(("stripe", "k")) is None and counts[("refund", "stripe", "k")] == 0
    assert counts[("charge", "stripe", "k")] == 3
    store.clear()
    assert charges.get(("stripe", "k")) is None and counts[("charge", "stripe", "k")] == 0


def test_find_answers_a_providers_records_by_lookup_oldest_first() -> None:
    state = MockState(0.0, 0.0, (0.0, 0.0))
    for key, provider in (("1", "stripe"), ("2", "paypal"), ("3", "stripe")):
        state.add("charge", (provider, key), record(key, "pay_1", provider=provider))
    assert [r.id for r in state.find("charge", "stripe", "pay_1")] == ["ch_1", "ch_3"]
    assert state.find("refund", "stripe", "pay_1") == [] and state.charges_by_id["ch_2"].provider == "paypal"


async def test_a_keys_lock_serialises_its_requests_and_is_forgotten_once_free() -> None:
    state, order = MockState(0.0, 0.0, (0.0, 0.0)), []

    async def hold(name: str) -> None:
        async with state.lock(("charge", "stripe", "k")):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(hold("a"), hold("b"), hold("c"))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert state._locks == {}


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_the_process_does_not_grow_with_the_records_it_keeps() -> None:
    """20,000 records of ~2 KB (40 MB as objects) stay on disk: the RSS grows by far less."""
    state = MockState(0.0, 0.0, (0.0, 0.0))
    padding = "x" * 1500
    for i in range(1000):  # warm up: SQLite's page cache fills to its bound
        state.add("charge", ("stripe", f"w{i}"), record(f"w{i}{padding}", f"pay_{i}"))
    before = rss_kib()
    for i in range(20_000):
        state.add("charge", ("stripe", f"k{i}"), record(f"k{i}{padding}", f"pay_{i}"))
    grown_kib = rss_kib() - before
    assert grown_kib < 8_000, grown_kib
    assert state.charges[("stripe", "k19999")].idempotency_key.startswith("k19999")
