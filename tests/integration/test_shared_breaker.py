"""The circuit breaker across two real processes: one opens it, the other refuses at once without calling the
provider, and both let calls through again once the recovery timeout is over (API.md §8: breaker state is
shared through Redis)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import ROOT

RECOVERY = 8.0  # long enough that the second peer's first call comes well within it, even on a loaded machine


class Peer:
    """A `breaker_peer` process, one JSON answer per line sent."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.breaker_peer", redis_url, prefix, str(RECOVERY)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.read()["result"] == "started"

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the peer exited: {self.process.wait(10)}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, outcome: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{outcome}\n")
        self.process.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def peers(redis_url: str) -> Iterator[tuple[Peer, Peer]]:
    prefix = f"test:breaker:{uuid.uuid4().hex}:"
    started: list[Peer] = []
    try:
        started.append(Peer(redis_url, prefix))
        started.append(Peer(redis_url, prefix))
        yield started[0], started[1]
    finally:
        for peer in started:
            peer.stop()
        redis.Redis.from_url(redis_url).delete(f"{prefix}fake")


def test_two_processes_open_and_close_together(peers: tuple[Peer, Peer]) -> None:
    first, second = peers
    assert [first.call("down")["result"] for _ in range(4)] == ["failed"] * 4  # the fourth opens its breaker
    opened = time.monotonic()
    assert first.call("ok")["result"] == "refused"
    refused = second.call("ok")  # it has seen no failure of its own
    assert (refused["result"], refused["state"], refused["calls"]) == ("refused", "open", 0), refused
    assert 0 < refused["retry_after"] <= RECOVERY
    deadline = opened + RECOVERY + 30
    while (answer := second.call("ok"))["result"] == "refused":  # until the recovery timeout is over
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)
    assert (answer["result"], answer["state"], answer["calls"]) == ("called", "closed", 1)
    probe = first.call("ok")  # the first's half-open probe succeeds: closed there too
    assert (probe["result"], probe["state"]) == ("called", "closed")
