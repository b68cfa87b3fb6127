"""What the settings' fields share: a port's bounds, and a duration (read from "500ms", "5s", "1h"…)."""

from __future__ import annotations

from typing import Any

import attrs

PORT = attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(65535))


def duration(default: float, *, positive: bool = False) -> Any:
    """A duration in seconds (marked so that the loader parses units), greater than 0 if `positive`."""
    validator = attrs.validators.gt(0.0) if positive else None
    return attrs.field(default=default, metadata={"duration": True}, validator=validator)
