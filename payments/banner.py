"""The banner of `payments dev`: where the API, its docs and the mock providers are, the development key and how to
stop, printed once the API answers `/health/ready` (not when its process merely starts)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

import httpx

POLL = 0.2  # seconds between two looks at /health/ready
SLOW = 30.0  # not ready after this long, with nothing dead: say what the API answers


def base_url(host: str, port: int) -> str:
    """The API's URL on this machine: a wildcard listener (0.0.0.0, ::) is reached on loopback."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def banner_text(url: str, key: str, mock: str | None) -> str:
    """The lines printed once the stack answers; `mock` is the mock providers' URL when they run."""
    rows = [("Payments API", url), ("API docs", f"{url}/docs")]
    if mock:
        rows.append(("Mock providers", f"{mock}/_mock/charges"))
    rows += [("Dev API key", key), ("Try it", f"curl -H 'Authorization: Bearer {key}' {url}/api/v1/accounts")]
    lines = [f"  {label:<15}{value}" for label, value in rows]
    return "\n" + "\n".join(lines) + "\n\n  Ready. Ctrl-C to stop.\n"


class Banner:
    """Polls `{url}/health/ready` in a thread of its own and prints `text` once it answers 200. A child that exits
    before then is reported in one line (its own log says why; the supervisor restarts it, and the banner still
    comes once the API answers); so is an API still not ready after `SLOW` seconds, with what it answers."""

    def __init__(self, url: str, text: str, *, out: TextIO | None = None, slow: float = SLOW) -> None:
        self._url, self._text, self._out, self._slow = url, text, out or sys.stdout, slow
        self._done = threading.Event()
        #: Set once the API has answered 200 (the banner printed, or due had the stack not been stopping).
        self.ready = threading.Event()
        self._told_exit = False
        self._thread = threading.Thread(target=self._wait, name="dev-banner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No banner after this (the stack is stopping)."""
        self._done.set()

    def child_exited(self, name: str, what: str) -> None:
        """The supervisor's report of a child that exited (or could not start) without being asked to."""
        if self._done.is_set() or self._told_exit:
            return
        self._told_exit = True
        self._say(f"payments dev: {name} {what} before the API answered {self._url}/health/ready; its log above says "
                  f"why. It is restarted; the URL and key print once the API answers.")

    def _say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def _wait(self) -> None:
        started, told_slow, last = time.monotonic(), False, "no answer yet"
        with httpx.Client(timeout=1.0, trust_env=False) as http:  # no proxy between us and our own API
            while not self._done.is_set():
                try:
                    answer = http.get(f"{self._url}/health/ready")
                    if answer.status_code == 200:
                        self.ready.set()
                        if not self._done.is_set():
                            self._say(self._text)
                        self._done.set()
                        return
                    last = f"{answer.status_code} {answer.text[:300]}"
                except httpx.HTTPError as error:
                    last = f"no answer ({type(error).__name__})"
                if not told_slow and time.monotonic() - started > self._slow and not self._told_exit:
                    told_slow = True
                    self._say(f"payments dev: the API is not ready after {self._slow:.0f}s ({self._url}/health/ready: "
                              f"{last}); still waiting")
                self._done.wait(POLL)
