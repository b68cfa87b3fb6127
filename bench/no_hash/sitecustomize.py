"""bench/run.py --what-if no-hash: the API's processes run with this directory first on PYTHONPATH, so Python
imports this module at start-up in each of them (Sanic's worker processes included).

It switches off the Python half of the hash chain (docs/design.md, "Tamper-evident entries"): `core.ledger.post`
no longer hashes an entry over the previous one; every entry and every account's chain head get the empty hash
(b"", a 1-byte value instead of 32 bytes). The database half (the `octet_length(...) = 32` CHECKs, which would
refuse the empty hash) is dropped on the bench database by bench/run.py. A bench-only experiment: the chains it
writes do not verify, and `payments ledger check` says so.
"""

from __future__ import annotations

from typing import Any

import core.ledger


def _no_hash(previous: bytes, **fields: Any) -> bytes:
    return b""


core.ledger.entry_hash = _no_hash  # type: ignore[assignment]
