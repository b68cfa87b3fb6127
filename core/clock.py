"""Wall-clock time in UTC and its RFC 3339 rendering."""

from __future__ import annotations

import functools
from datetime import UTC, datetime


class SystemClock:
    """The real clock (the `Clock` port)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, millisecond precision."""
    return None if value is None else _rfc3339(value)


@functools.lru_cache(maxsize=256)
def _rfc3339(value: datetime) -> str:
    """`timestamp` of an instant, kept for the next call: the views of a batch's hundred payments render the same
    few instants a thousand times (each payment's view and events carry `created_at`, `updated_at` and
    `completed_at`, all the batch's one instant). Aware datetimes hash and compare as instants, so one cached
    for another with the same UTC instant renders the same text."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
