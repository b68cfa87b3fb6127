"""Writes the synchronous client from the asynchronous one: `python -m payments.client.unasync`.

The client is written once, as `aio_*.py`; `transport.py`, `money.py` and `client.py` are derived from them
here by plain token rewriting (as httpcore does with unasync), and a unit test fails if a derived file differs
from what this writes, so the two clients cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
#: Each asynchronous module and the synchronous one derived from it.
SOURCES = {"aio_transport.py": "transport.py", "aio_money.py": "money.py", "aio_client.py": "client.py"}
#: What ruff would say of a derived module and is left as it is: its import order (`Async...` names sort
#: differently), and an async generator's `for ... yield` (which `yield from` would replace only in sync code).
_NOQA = {"aio_transport.py": "I001, UP028"}
_HEADER = ("# Generated from {source} by payments/client/unasync.py: edit {source}, then run\n"
           "# `python -m payments.client.unasync`. (Import order follows the source's.)\n"
           "# ruff: noqa: {noqa}\n")
_REWRITES = (
    (r"\bAwaitable\[None\]", "None"),
    (r"\bAwaitable, ", ""),
    (r"\basync def ", "def "),
    (r"\basync for ", "for "),
    (r"\basync with ", "with "),
    (r"\bawait ", ""),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"^import asyncio$", "import time"),
    (r"\baclose\b", "close"),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\bpayments\.client\.aio_", "payments.client."),
    (r"\basynchronous\b", "synchronous"),
)


def unasync(source: str, text: str) -> str:
    """The synchronous module derived from the asynchronous module `source` whose text is `text`."""
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return _HEADER.format(source=source, noqa=_NOQA.get(source, "I001")) + text


def derived() -> dict[Path, str]:
    """Every synchronous module's path and the text it should have."""
    return {HERE / target: unasync(source, (HERE / source).read_text(encoding="utf-8"))
            for source, target in SOURCES.items()}


def main() -> int:
    for path, text in derived().items():
        path.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
