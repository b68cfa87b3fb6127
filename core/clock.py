"""Wall-clock time in UTC and its RFC 3339 rendering."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """The real clock (the `Clock` port)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, millisecond precision."""
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
