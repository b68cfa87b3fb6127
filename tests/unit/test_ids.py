"""core.ids.new_id: UUIDv7 (RFC 9562), strictly increasing within the process."""

from __future__ import annotations

import itertools
import time
import uuid

from core.ids import new_id


def test_new_id_is_a_version_7_rfc_9562_uuid() -> None:
    value = new_id()
    assert isinstance(value, uuid.UUID)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_new_id_carries_the_unix_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    # A burst of more than 4096 ids in one millisecond borrows the next one, hence the slack.
    assert before <= value.int >> 80 <= after + 5


def test_new_id_is_strictly_increasing_in_a_tight_loop() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(a.bytes < b.bytes for a, b in itertools.pairwise(ids))  # byte order, as PostgreSQL sorts
    assert all(a.version == 7 and a.variant == uuid.RFC_4122 for a in ids)
    assert len(set(ids)) == len(ids)
