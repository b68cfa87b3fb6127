"""`payments events tail` as a developer runs it: a process following the API's feed, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs
import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import API, open_account, transfer

pytestmark = pytest.mark.usefixtures("no_server_errors")


@attrs.define
class Tail:
    """A running `payments events tail` with its output lines in queues."""

    popen: subprocess.Popen[str]
    out: queue.Queue[str] = attrs.Factory(queue.Queue)
    err: queue.Queue[str] = attrs.Factory(queue.Queue)

    def lines(self, count: int, stream: str = "out", timeout: float = 30) -> list[str]:
        source, found = getattr(self, stream), []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            try:
                found.append(source.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{len(found)} of {count} lines on std{stream}: {found}") from None
        return found

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(30)


def _pump(stream: IO[str], into: queue.Queue[str]) -> None:
    for text in stream:
        into.put(text.rstrip("\n"))


@pytest.fixture
def tails(tmp_path: Path) -> Iterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        if tail.popen.poll() is None:
            tail.popen.kill()
            tail.popen.wait()


def start(tails: list[Tail], data_dir: Path, *args: str) -> Tail:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
    env["PAYMENTS_DATA_DIR"] = str(data_dir)  # no development key to find there unless a test puts one
    popen = subprocess.Popen([sys.executable, "-m", "payments", "events", "tail", *args], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail = Tail(popen)
    for stream, into in ((popen.stdout, tail.out), (popen.stderr, tail.err)):
        assert stream is not None
        threading.Thread(target=_pump, args=(stream, into), daemon=True).start()
    tails.append(tail)
    return tail


def _following(tail: Tail) -> str:
    (said,) = tail.lines(1, "err")
    assert said.startswith("payments events tail: following"), said
    return said


async def test_tail_prints_new_events_as_json_lines_and_resumes_after_an_id(
    stack: Stack, client: httpx.AsyncClient, api_key: str, tails: list[Tail], tmp_path: Path
) -> None:
    alice = await open_account(client, "50.00", user_id="alice")
    follow = start(tails, tmp_path, "--url", stack.base_url, "--key", api_key, "--json")
    _following(follow)  # it has skipped what was there: alice's account.created is not printed
    bob = await open_account(client, user_id="bob")
    moved = await transfer(client, alice["id"], bob["id"], "5.00")
    assert moved.status_code == 201, moved.text
    printed = [json.loads(text) for text in follow.lines(2)]
    assert [(e["type"], e["data"]["object"]["id"]) for e in printed] == [
        ("account.created", bob["id"]), ("transfer.completed", moved.json()["id"])]
    for event in printed:  # exactly what the API has
        assert event == (await client.get(f"{API}/events/{event['id']}")).json()
    assert follow.stop() == 0

    # resuming after the last id seen prints only what came since; one type, one line each
    await open_account(client, user_id="carol")
    again = await transfer(client, bob["id"], alice["id"], "1.00")
    resumed = start(tails, tmp_path, "--url", stack.base_url, "--key", api_key, "--after", printed[-1]["id"],
                    "--type", "transfer.completed")
    (text,) = resumed.lines(1)
    assert " transfer.completed " in text and f"payment {again.json()['id']} completed 1.00 USD" in text
    assert resumed.stop() == 0
    assert resumed.out.empty()

    everything = start(tails, tmp_path, "--url", stack.base_url, "--key", api_key, "--from-start")
    assert [text.split()[1] for text in everything.lines(5)] == [
        "account.created", "account.created", "transfer.completed", "account.created", "transfer.completed"]
    _following(everything)
    assert everything.stop() == 0


async def test_tail_finds_the_dev_key_and_stops_on_a_refused_one(
    stack: Stack, client: httpx.AsyncClient, api_key: str, tails: list[Tail], tmp_path: Path
) -> None:
    (tmp_path / "dev_api_key").write_text(api_key + "\n")  # as `make run` leaves it
    found = start(tails, tmp_path, "--url", stack.base_url)
    _following(found)
    account = await open_account(client)
    (text,) = found.lines(1)
    assert f"account {account['id']}" in text and " account.created " in text
    assert found.stop() == 0

    refused = start(tails, tmp_path, "--url", stack.base_url, "--key", "sk_not_a_key")
    assert refused.popen.wait(30) == 1
    assert "the API refused the key" in " ".join(refused.lines(1, "err"))


def test_tail_waits_for_an_api_that_is_not_there_yet(tails: list[Tail], tmp_path: Path) -> None:
    waiting = start(tails, tmp_path, "--url", "http://127.0.0.1:9", "--key", "sk_whatever")
    (said,) = waiting.lines(1, "err")
    assert said.startswith("payments events tail: ") and said.endswith("; retrying")
    assert waiting.popen.poll() is None  # still trying
    assert waiting.stop() == 0

