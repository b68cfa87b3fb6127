"""The supervisor of `payments dev` and `payments worker --processes N`, run with stand-in children: a child that
crash-loops is retried for ever at the capped backoff (and the log says so), and a second signal kills at once
a child that would not stop."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SUPERVISE = """
import sys
from payments.supervisor import Backoff, Child, Supervisor
command = sys.argv[1]
child = Child("stand-in", [sys.executable, "-c", command], {})
sys.exit(Supervisor([child], grace=float(sys.argv[2]), backoff=Backoff(first=0.05, cap=0.2)).run())
"""
CRASHES = "raise SystemExit(3)"
#: Ignores SIGTERM, then touches the file named in place of {}, then sleeps.
STUBBORN = "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); pathlib.Path({!r}).touch(); " \
           "time.sleep(600)"


def supervise(child: str, grace: float, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SUPERVISE, child, str(grace)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def until(check: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.05)


def test_a_crash_looping_child_is_retried_for_ever_and_reported(tmp_path: Path) -> None:
    log = tmp_path / "supervisor.log"
    supervisor = supervise(CRASHES, 5, log)
    try:
        until(lambda: log.read_text().count("crash-looping") >= 5, "five crash-loop reports")
        assert supervisor.poll() is None  # it never gives up
        text = log.read_text()
        assert "stand-in (pid" in text and "exited with exit code 3" in text and "restarting in" in text
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    finally:
        supervisor.kill()
        supervisor.wait()


def test_a_second_signal_kills_a_child_that_ignores_the_first(tmp_path: Path) -> None:
    log = tmp_path / "supervisor.log"
    ignoring = tmp_path / "ignoring"
    supervisor = supervise(STUBBORN.format(str(ignoring)), 600, log)  # the grace alone would keep it ten minutes
    try:
        until(ignoring.exists, "the child ignores SIGTERM")
        child = psutil.Process(supervisor.pid).children()[0]
        supervisor.send_signal(signal.SIGTERM)
        until(lambda: "stopping stand-in" in log.read_text(), "the supervisor starts stopping")
        assert child.is_running()  # it ignored SIGTERM, and the grace is long
        # (a signal within SAME_STOP of the first is taken for the same one delivered twice: send until heard)
        deadline = time.monotonic() + 30
        while supervisor.poll() is None and time.monotonic() < deadline:
            supervisor.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                supervisor.wait(1)
        assert supervisor.returncode == 0
        assert "a second signal: killing what is still running" in log.read_text()
        assert psutil.wait_procs([child], timeout=10)[1] == []
    finally:
        supervisor.kill()
        supervisor.wait()


def test_a_child_with_after_starts_once_after_says_so_and_restarts_without_asking_again() -> None:
    """`payments dev` starts the worker and the mock providers once the API answers (`Child.after`)."""
    from payments.supervisor import Child, Supervisor

    up = False
    asked = 0

    def api_up() -> bool:
        nonlocal asked
        asked += 1
        return up

    child = Child("later", [sys.executable, "-c", "import time; time.sleep(600)"], {}, api_up)
    supervisor = Supervisor([child], grace=5)
    (slot,) = supervisor._slots
    try:
        supervisor._tend(slot, time.monotonic())
        assert slot.process is None and asked == 1  # not yet
        up = True
        supervisor._tend(slot, time.monotonic())
        assert slot.process is not None and slot.process.poll() is None
        slot.process.kill()
        slot.process.wait()
        up = False  # a restart does not wait for `after` again
        supervisor._tend(slot, time.monotonic())  # notices the exit: restart due after the backoff
        supervisor._tend(slot, slot.due)
        assert slot.process is not None and slot.process.poll() is None and asked == 2
    finally:
        if slot.process is not None:
            slot.process.kill()
            slot.process.wait()
