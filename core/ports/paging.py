"""Pages of a newest-first keyset listing, as every listing port returns them."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    """One page of a newest-first keyset listing; `next_cursor` is opaque, None at the end."""

    items: list[T]
    next_cursor: str | None
