"""Webhook signatures (API.md §7): `Payments-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

`sign` is what the sender puts on a delivery (one `v1=` per live secret, so a receiver
keeps verifying while a secret is rotated); `verify_signature` is for receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only; 12 is well past year 9999
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class InvalidSignature(ValueError):
    """The signature header is malformed, stale, from the future, or matches none of its `v1=` values."""


def sign(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """The `Payments-Signature` header for `body` sent at `timestamp`, one `v1=` per secret."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return ",".join([f"t={timestamp}", *(f"v1={_digest(secret, timestamp, body)}" for secret in secrets)])


def verify_signature(
    secret: str, header: str, body: bytes | str, tolerance: int = 300, *, now: float | None = None
) -> bool:
    """True if `header` signs `body` with `secret` within `tolerance` seconds of now; else `InvalidSignature`.

    Pass the raw request body, byte for byte (not re-serialised JSON). Any of several `v1=` values may
    match (the sender signs with the old and the new secret while one is rotated). Digests are compared
    in constant time; a timestamp older or newer than `tolerance` is refused (replays, skewed clocks).
    """
    raw = body.encode() if isinstance(body, str) else body
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature(f"the signature's timestamp is {int(current - timestamp)} s away from now "
                               f"(tolerance {tolerance} s)")
    expected = _digest(secret, timestamp, raw).encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in candidates):
        raise InvalidSignature("no v1 signature matches this secret and body")
    return True


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _parse(header: object) -> tuple[int, list[str]]:
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if not isinstance(header, str):  # e.g. headers.get(...) of a request without the header
        raise InvalidSignature("no Payments-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and _TIMESTAMP.fullmatch(value) and timestamp is None:
            timestamp = int(value)
        elif key == "v1" and _HEX_DIGEST.fullmatch(value):  # anything else cannot match: ignored
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("expected a header of the form t=<unix seconds>,v1=<hex digest>")
    return timestamp, candidates
