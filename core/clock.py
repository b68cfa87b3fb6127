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
    return None if value is None else _rendered(value)


@functools.lru_cache(maxsize=256)  # one posting renders its instant a dozen times (rows, events, views)
def _rendered(value: datetime) -> str:
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
