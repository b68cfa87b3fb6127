"""`payments events tail` against a scripted API: what it prints, how it waits, when it gives up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from app.configuration import load_settings
from payments.cli import parser
from payments.events import DOWN_MAX, IDLE, IDLE_MAX, Answer, api_url, cmd_events_tail, dev_key, line, tail


def event(n: int, kind: str = "payment.completed", **thing: Any) -> dict[str, Any]:
    return {"id": f"00000000-0000-7000-8000-{n:012d}", "type": kind, "created_at": f"2026-01-01T00:00:{n:02d}.000Z",
            "data": {"object": {"id": f"obj-{n}", **thing}}}


def page(*events: dict[str, Any], more: bool = False) -> Answer:
    return Answer(200, {"data": list(events), "has_more": more, "next_cursor": events[-1]["id"] if more else None})


class Stop(Exception):
    """Ends the endless tail once the script is played."""


@attrs.define
class Api:
    """Answers the tail's GETs from a script, recording what it was asked and how long it waited."""

    script: list[Answer]
    asked: list[dict[str, str]] = attrs.Factory(list)
    waits: list[float] = attrs.Factory(list)
    out: list[str] = attrs.Factory(list)
    err: list[str] = attrs.Factory(list)

    def fetch(self, params: dict[str, str]) -> Answer:
        self.asked.append(params)
        if not self.script:
            raise Stop
        return self.script.pop(0)

    def run(self, **options: Any) -> int | None:
        settings: dict[str, Any] = {"event_type": None, "after": None, "from_start": False, "as_json": False}
        try:
            return tail(self.fetch, **{**settings, **options}, write=self.out.append, warn=self.err.append,
                        sleep=self.waits.append)
        except Stop:
            return None


def test_by_default_it_skips_what_is_there_and_prints_what_comes() -> None:
    api = Api([page(event(1), event(2), more=True), page(event(3)), page(), page(event(4), event(5)), page()])
    assert api.run() is None
    assert api.asked[0] == {"limit": "100"} and api.asked[1]["after"] == event(2)["id"]
    assert [p.get("after") for p in api.asked[2:]] == [event(3)["id"]] * 2 + [event(5)["id"]] * 2
    assert api.out == [line(event(4)), line(event(5))]
    assert api.err == [f"payments events tail: following all events after {event(3)['id']} (Ctrl-C to stop)"]


def test_json_lines_from_the_start_or_after_an_id_with_a_type() -> None:
    api = Api([page(event(1), event(2))])
    api.run(from_start=True, as_json=True)
    assert [json.loads(text) for text in api.out] == [event(1), event(2)]
    api = Api([page(event(7, "refund.failed"))])
    api.run(after=event(6)["id"], event_type="refund.failed")
    assert api.asked[0] == {"type": "refund.failed", "limit": "100", "after": event(6)["id"]}
    assert api.out == [line(event(7, "refund.failed"))]


def test_idle_polls_back_off_and_events_bring_the_pace_back() -> None:
    api = Api([page(), page(), page(), page(), page(), page(event(1)), page()])
    api.run(from_start=True)
    assert api.waits == [IDLE, IDLE * 2, IDLE * 4, IDLE_MAX, IDLE_MAX, IDLE, IDLE * 2]


def test_an_api_that_is_down_or_busy_is_waited_for_and_said_once() -> None:
    down = Answer(0, error="connection refused")
    busy = Answer(503, {"type": "/problems/service_unavailable", "detail": "the database is unavailable"},
                  retry_after=7)
    api = Api([down, down, busy, Answer(429, {"detail": "slow down"}), *[down] * 8, page(event(1))])
    api.run(from_start=True)
    assert api.waits[:4] == [0.5, 1.0, 7, 4.0]  # doubling, or Retry-After when longer
    assert api.waits[4:12] == [8.0, 16.0, *[DOWN_MAX] * 6]
    assert api.waits[12:] == [IDLE]  # back to the idle pace
    assert api.err == ["payments events tail: connection refused; retrying",
                       "payments events tail: the API answers again",
                       f"payments events tail: following all events after {event(1)['id']} (Ctrl-C to stop)"]
    assert api.out == [line(event(1))]


@pytest.mark.parametrize(("answer", "says"), [
    (Answer(401, {"type": "/problems/unauthorized", "detail": "unknown API key"}), "refused the key"),
    (Answer(403, {"type": "/problems/forbidden", "detail": "needs read"}), "refused the key"),
    (Answer(422, {"type": "/problems/validation_error", "detail": "after: names no event",
                 "errors": [{"field": "after", "message": "names no event"}]}), "is not in this feed"),
    (Answer(422, {"type": "/problems/validation_error", "detail": "type: must be one of"}), "type: must be one of"),
])
def test_a_refusal_ends_it_with_status_1_and_why(answer: Answer, says: str, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    api = Api([answer])
    assert api.run(after=event(1)["id"]) == 1
    assert says in capsys.readouterr().err


def test_lines_name_any_object() -> None:
    assert line(event(3, "transfer.completed", status="completed", amount="25.00", currency="USD")) == (
        f"2026-01-01T00:00:03.000Z  transfer.completed          payment obj-3 completed 25.00 USD  "
        f"event={event(3)['id']}")
    assert line(event(4, "account.created", balance="0.00", currency="JPY")).endswith(
        f"account obj-4 0.00 JPY  event={event(4)['id']}")
    assert " hold obj-5 voided 1.00 EUR " in line(event(5, "hold.voided", status="voided", amount="1.00",
                                                       currency="EUR"))
    assert " payment obj-6 failed (declined) 2.00 USD " in line(event(6, "payment.failed", status="failed",
                                                                     failure_code="declined", amount="2.00",
                                                                     currency="USD"))


def test_where_it_looks_by_default(tmp_path: Path) -> None:
    settings = load_settings({"PAYMENTS_DATA_DIR": str(tmp_path)})
    assert api_url(settings) == "http://127.0.0.1:8080"
    assert api_url(load_settings({"PAYMENTS_SERVER_HOST": "0.0.0.0", "PAYMENTS_SERVER_PORT": "9000"})) == (
        "http://127.0.0.1:9000")
    assert dev_key(settings) == ""
    (tmp_path / "dev_api_key").write_text("sk_from_make_run\n")
    assert dev_key(settings) == "sk_from_make_run"
    assert dev_key(load_settings({"PAYMENTS_DATA_DIR": str(tmp_path), "PAYMENTS_DEV_API_KEY": "sk_env"})) == "sk_env"


def test_without_a_key_it_says_where_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings({"PAYMENTS_DATA_DIR": str(tmp_path)})
    assert cmd_events_tail(settings, parser().parse_args(["events", "tail"])) == 2
    assert f"no API key: pass --key, or start `make run` once (it keeps a development key in {tmp_path}" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit):
        parser().parse_args(["events", "tail", "--after", "yesterday"])
    assert "must be an event id" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["events", "tail", "--after", event(1)["id"], "--from-start"])
