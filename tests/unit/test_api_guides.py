"""The user guides in docs/api/ keep to the code where they restate it: the problem types, the event catalogue,
the signature check they show receivers, and their own table of contents."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from app.http.problem_types import PROBLEM_TYPES
from core.events import CATALOGUE
from core.signatures import sign

GUIDES = Path(__file__).resolve().parents[2] / "docs" / "api"


def _read(name: str) -> str:
    return (GUIDES / name).read_text(encoding="utf-8")


def test_the_errors_guide_names_every_problem_type_with_its_status() -> None:
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", _read("errors.md"), re.MULTILINE)
    listed = {slug: int(status) for status, slug in rows}
    assert len(listed) == len(rows)  # each once
    assert listed == {slug: kind.status for slug, kind in PROBLEM_TYPES.items()}


def test_the_webhooks_guide_lists_the_event_catalogue() -> None:
    section = _read("webhooks.md").split("### Event types", 1)[1].split("##", 1)[0]
    assert re.findall(r"`([a-z_]+\.[a-z_]+)`", section) == list(CATALOGUE)


def _sample_verify() -> Callable[..., bool]:
    """The `verify` function of the Python sample in webhooks.md, as a receiver would paste it."""
    code = re.search(r"```python\n(.*?)```", _read("webhooks.md"), re.DOTALL)
    assert code is not None
    scope: dict[str, object] = {}
    exec(compile(code[1], "webhooks.md", "exec"), scope)  # the guide's own code, nothing else
    verify = scope["verify"]
    assert callable(verify)
    return verify  # type: ignore[no-any-return]


def test_the_signature_sample_accepts_what_the_server_signs() -> None:
    verify, body, now = _sample_verify(), b'{"id": "e1", "type": "payment.completed"}', int(time.time())
    assert verify("whsec_new", sign(["whsec_new"], body, now), body)
    assert verify("whsec_old", sign(["whsec_new", "whsec_old"], body, now), body)  # while a secret rotates


def test_the_signature_sample_refuses_what_it_must() -> None:
    verify, body, now = _sample_verify(), b'{"id": "e1"}', int(time.time())
    assert not verify("whsec_other", sign(["whsec_a"], body, now), body)
    assert not verify("whsec_a", sign(["whsec_a"], body, now), body + b" ")
    assert not verify("whsec_a", sign(["whsec_a"], body, now - 301), body)
    assert not verify("whsec_a", sign(["whsec_a"], body, now + 301), body)
    assert not verify("whsec_a", "garbage", body)
    assert not verify("whsec_a", "", body)


def test_the_index_links_every_guide() -> None:
    index = _read("README.md")
    for guide in sorted(GUIDES.glob("*.md")):
        if guide.name != "README.md":
            assert f"]({guide.name})" in index, f"docs/api/README.md does not link {guide.name}"
