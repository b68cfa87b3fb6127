"""core.signatures: what a webhook receiver checks (API.md §7)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from core.signatures import InvalidSignature, sign, verify_signature

BODY = b'{"id":"evt_1","type":"payment.completed","data":{"object":{"amount":"10.00"}}}'
NOW = 1_800_000_000


def test_a_signed_body_verifies_and_the_digest_is_the_documented_one() -> None:
    header = sign(["whsec_a"], BODY, NOW)
    expected = hmac.new(b"whsec_a", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify_signature("whsec_a", header, BODY, now=NOW) is True
    assert verify_signature("whsec_a", header, BODY.decode(), now=NOW + 299) is True


@pytest.mark.parametrize("body", [BODY + b" ", BODY.replace(b"10.00", b"99.00"), b""])
def test_a_changed_body_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidSignature, match="no v1"):
        verify_signature("whsec_a", sign(["whsec_a"], BODY, NOW), body, now=NOW)


def test_another_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_signature("whsec_b", sign(["whsec_a"], BODY, NOW), BODY, now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_stale_and_future_timestamps_are_refused(skew: int) -> None:
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature("whsec_a", sign(["whsec_a"], BODY, NOW), BODY, now=NOW + skew)
    assert verify_signature("whsec_a", sign(["whsec_a"], BODY, NOW), BODY, tolerance=abs(skew), now=NOW + skew)


def test_during_a_rotation_either_secret_verifies() -> None:
    header = sign(["whsec_new", "whsec_old"], BODY, NOW)
    assert header.count("v1=") == 2
    assert verify_signature("whsec_new", header, BODY, now=NOW)
    assert verify_signature("whsec_old", header, BODY, now=NOW)
    with pytest.raises(InvalidSignature):
        verify_signature("whsec_other", header, BODY, now=NOW)


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={NOW}", "t=soon,v1=abc", "garbage", f"t={NOW},v0=abc",
                                    f"t=-{NOW},v1=abc", "t=１２,v1=abc", f"t={NOW},v1=abc",
                                    f"t={NOW},v1={'é' * 64}", f"t={NOW},v1={'A' * 64}", f"t={'9' * 400},v1={'a' * 64}",
                                    f"t={'9' * 5000},v1={'a' * 64}", f"t={NOW},v1={'a' * 64}\x00"])
def test_malformed_headers_are_refused(header: str) -> None:
    """Only ever `InvalidSignature`: a receiver that catches it never answers 500 to a forged header."""
    with pytest.raises(InvalidSignature):
        verify_signature("whsec_a", header, BODY, now=NOW)


def test_a_malformed_v1_next_to_a_good_one_does_not_hide_it() -> None:
    good = sign(["whsec_a"], BODY, NOW)
    assert verify_signature("whsec_a", f"{good},v1=é,v1=zz", BODY, now=NOW)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        sign([], BODY, NOW)


def test_a_missing_or_bytes_header() -> None:
    header = sign(["whsec_a"], BODY, NOW)
    assert verify_signature("whsec_a", header.encode(), BODY, now=NOW)  # type: ignore[arg-type]
    for missing in (None, 17):
        with pytest.raises(InvalidSignature):
            verify_signature("whsec_a", missing, BODY, now=NOW)  # type: ignore[arg-type]
