"""`payments events tail`: follow the events feed in the terminal, through the HTTP API.

Through the API rather than the database: the feed's guarantees, the tenant and the key's scope are the API's,
and a developer running `make run` has both already (it serves on 127.0.0.1:8080 and keeps its key in
`.data/dev_api_key`, which is where the command looks by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import httpx

from app.bootstrap import data_dir
from app.settings import Settings

#: An empty poll waits IDLE doubling up to IDLE_MAX; a failed one (API down, 429, 503) waits DOWN doubling up to
#: DOWN_MAX, or the Retry-After the API gave if longer.
IDLE, IDLE_MAX, DOWN, DOWN_MAX = 0.25, 2.0, 0.5, 30.0
PAGE = 100


@attrs.frozen
class Answer:
    """What one GET of the feed got: an HTTP status and body, or status 0 and the connection error."""

    status: int
    body: Any = None
    retry_after: float = 0.0
    error: str = ""


Fetch = Callable[[dict[str, str]], Answer]


class Backoff:
    """Waits that double from `first` up to `most` while the same thing keeps happening."""

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most, self.next = first, most, first

    def wait(self) -> float:
        current, self.next = self.next, min(self.most, self.next * 2)
        return current

    def reset(self) -> None:
        self.next = self.first


def http_fetch(url: str, key: str) -> Fetch:
    """GET /api/v1/events on the API at `url` with `key`."""
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0)

    def fetch(params: dict[str, str]) -> Answer:
        try:
            response = client.get("/api/v1/events", params=params)
        except httpx.HTTPError as error:
            return Answer(0, error=str(error) or type(error).__name__)
        try:
            body = response.json()
        except ValueError:
            body = None
        retry = response.headers.get("retry-after", "")
        return Answer(response.status_code, body, float(retry) if retry.isdigit() else 0.0)

    return fetch


def line(event: dict[str, Any]) -> str:
    """One event on one line: when, what, and the object it is about (any kind, holds included)."""
    thing: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    kind = "payment" if event["type"] == "transfer.completed" else event["type"].split(".")[0]
    amount = thing.get("amount", thing.get("balance"))
    failure = thing.get("failure_code")
    words = [kind, str(thing.get("id", "-")), str(thing.get("status", "")) + (f" ({failure})" if failure else ""),
             f"{amount} {thing.get('currency', '')}" if amount is not None else ""]
    return f"{event['created_at']}  {event['type']:<26}  {' '.join(w for w in words if w)}  event={event['id']}"


def tail(fetch: Fetch, *, event_type: str | None, after: str | None, from_start: bool, as_json: bool,
         write: Callable[[str], None], warn: Callable[[str], None], sleep: Callable[[float], None]) -> int:
    """Print every event after `after` (None: after the last one now, or all with `from_start`) and keep
    polling; returns an exit status when the API refuses (a KeyboardInterrupt ends it otherwise)."""
    base = {"type": event_type} if event_type else {}
    idle, down, failing = Backoff(IDLE, IDLE_MAX), Backoff(DOWN, DOWN_MAX), False
    catching_up = after is None and not from_start  # skip what is there now, show what comes
    caught_up = False
    while True:
        answer = fetch({**base, "limit": str(PAGE), **({"after": after} if after else {})})
        if answer.status == 200 and isinstance(answer.body, dict):
            if failing:
                warn("payments events tail: the API answers again")
                failing = False
            down.reset()
            for event in answer.body["data"]:
                if not catching_up:
                    write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) if as_json else line(event))
                after = event["id"]
            if answer.body["has_more"]:
                continue
            if not caught_up:
                catching_up, caught_up = False, True
                warn(f"payments events tail: following {event_type or 'all events'} after "
                     f"{after or 'the start'} (Ctrl-C to stop)")
            if answer.body["data"]:
                idle.reset()
            sleep(idle.wait())
        elif answer.status in (0, 429) or answer.status >= 500:
            if not failing:
                warn(f"payments events tail: {answer.error or _detail(answer)}; retrying")
                failing = True
            sleep(max(answer.retry_after, down.wait()))
        else:
            return _refused(answer, after)


def _detail(answer: Answer) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    return f"HTTP {answer.status}: {body.get('detail') or body.get('title') or 'no detail'}"


def _refused(answer: Answer, after: str | None) -> int:
    body = answer.body if isinstance(answer.body, dict) else {}
    if body.get("type") == "/problems/validation_error" and any(
            e.get("field") in ("after", "cursor") for e in body.get("errors") or [] if isinstance(e, dict)):
        print(f"payments events tail: event {after} is not in this feed (unknown, another tenant's, or past the "
              "retention); start again without --after", file=sys.stderr)
    elif answer.status in (401, 403):
        print(f"payments events tail: the API refused the key ({_detail(answer)}); pass --key, or run `make run` "
              "to create the development key", file=sys.stderr)
    else:
        print(f"payments events tail: {_detail(answer)}", file=sys.stderr)
    return 1


def event_id(text: str) -> str:
    """An --after value: an event id (a UUID)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an event id (a UUID), not {text!r}") from None


def api_url(settings: Settings) -> str:
    """Where `payments serve` (and `make run`) listens by the same settings; a wildcard host means this one."""
    host = settings.server.host if settings.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.server.port}"


def dev_key(settings: Settings) -> str:
    """PAYMENTS_DEV_API_KEY, or the key `payments dev` keeps in the data directory; "" if neither."""
    path = data_dir(settings) / "dev_api_key"
    return settings.dev_api_key or (path.read_text().strip() if path.exists() else "")


def cmd_events_tail(settings: Settings, args: argparse.Namespace) -> int:
    key = args.key or dev_key(settings)
    if not key:
        print("payments events tail: no API key: pass --key, or start `make run` once (it keeps a development "
              f"key in {data_dir(settings) / 'dev_api_key'})", file=sys.stderr)
        return 2
    url = (args.url or api_url(settings)).rstrip("/")

    def write(text: str) -> None:
        print(text, flush=True)

    def warn(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    return tail(http_fetch(url, key), event_type=args.type, after=args.after, from_start=args.from_start,
                as_json=args.json, write=write, warn=warn, sleep=time.sleep)
