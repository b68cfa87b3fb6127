"""A supervisor of child processes, for `payments dev` and `payments worker --processes N`.

A child that exits while nobody asked it to is started again after a backoff (doubling from `Backoff.first`
to `Backoff.cap`, less up to half at random), which starts over once a child has run `Backoff.stable_after`;
a child that keeps failing is retried at the cap for as long as the supervisor runs, never given up on.
SIGINT or SIGTERM stops every child (SIGTERM, then SIGKILL after the grace); a second signal kills them at
once. Each child runs in a process group of its own, so Ctrl-C in a terminal reaches only the supervisor
(which passes one SIGTERM on) and not the children too, and it stops by itself if the supervisor dies.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

import attrs
from loguru import logger

#: Set in each child's environment to the supervisor's pid: the child stops when its parent is no longer that.
SUPERVISOR_PID = "PAYMENTS_SUPERVISOR_PID"
TICK = 0.1  # how often children are looked at
CRASH_LOOP = 3  # this many quick exits in a row are reported as a crash loop
#: A signal this soon after the first is the same stop delivered twice (`kill -TERM -- -PGID` of `make run`
#: reaches us, and make passes its own SIGTERM on too), not a second request to hurry.
SAME_STOP = 0.5


@attrs.frozen(kw_only=True)
class Backoff:
    first: float = 1.0
    cap: float = 30.0
    stable_after: float = 30.0  # a child that ran this long was healthy: its next restart is quick again

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows `failures` quick exits in a row."""
        return min(self.cap, self.first * 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)  # jitter, no secret


@attrs.frozen
class Child:
    """A command to keep running: `name` is what the logs call it. With `after`, it is first started once
    `after()` says True (asked every tick): `payments dev` starts the worker once the API answers."""

    name: str
    argv: list[str]
    env: dict[str, str]
    after: Callable[[], bool] | None = None


@attrs.define
class _Slot:
    child: Child
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # quick exits in a row
    restarts: int = 0
    due: float = 0.0  # when to start it (again), while `process` is None


def describe(returncode: int) -> str:
    """`exit code 3` or `signal SIGKILL`."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


class Supervisor:
    """Runs `children` until SIGINT/SIGTERM, restarting any that exits; `run` returns 0 once all have stopped."""

    def __init__(self, children: Sequence[Child], *, grace: float, backoff: Backoff | None = None,
                 on_exit: Callable[[str, str], None] | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        """`on_exit(name, what)` hears of each child that exits (or cannot start) unasked, `on_stop()` that
        the children are about to be stopped; both run on the supervisor's thread and must not block."""
        self._slots = [_Slot(child) for child in children]
        self._grace = grace
        self._backoff = backoff or Backoff()
        self._on_exit = on_exit
        self._on_stop = on_stop
        self._signals = 0
        self._first_signal = 0.0

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        now = time.monotonic()
        if self._signals == 0:
            self._first_signal = now
        if self._signals == 0 or now - self._first_signal > SAME_STOP:
            self._signals += 1

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._signals:
                now = time.monotonic()
                for slot in self._slots:
                    self._tend(slot, now)
                time.sleep(TICK)
            if self._on_stop is not None:
                self._on_stop()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _tend(self, slot: _Slot, now: float) -> None:
        if slot.process is None:
            if now >= slot.due and (slot.restarts or slot.child.after is None or slot.child.after()):
                self._start(slot, now)
            return
        code = slot.process.poll()
        if code is None:
            return
        ran = now - slot.started
        slot.failures = 1 if ran >= self._backoff.stable_after else slot.failures + 1
        self._restart_later(slot, now, f"(pid {slot.process.pid}) exited with {describe(code)} after {ran:.1f}s")

    def _restart_later(self, slot: _Slot, now: float, what: str) -> None:
        delay = self._backoff.delay(slot.failures)
        slot.process, slot.due = None, now + delay
        name = slot.child.name
        if slot.failures >= CRASH_LOOP:
            logger.error("{} {}; it is crash-looping ({} failures in a row, each within {:.0f}s of its start): "
                         "restarting in {:.1f}s, and on, at most every {:.0f}s", name, what, slot.failures,
                         self._backoff.stable_after, delay, self._backoff.cap)
        else:
            logger.warning("{} {}; restarting in {:.1f}s", name, what, delay)
        if self._on_exit is not None:
            self._on_exit(name, what)

    def _start(self, slot: _Slot, now: float) -> None:
        env = {**slot.child.env, SUPERVISOR_PID: str(os.getpid())}
        try:
            slot.process = subprocess.Popen(slot.child.argv, env=env, stdin=subprocess.DEVNULL, process_group=0)
        except OSError as error:
            slot.failures += 1
            self._restart_later(slot, now, f"could not be started ({error})")
            return
        slot.started = now
        if slot.restarts:
            logger.warning("{} restarted (pid {}, restart {})", slot.child.name, slot.process.pid, slot.restarts)
        else:
            logger.info("{} started (pid {})", slot.child.name, slot.process.pid)
        slot.restarts += 1

    def _stop_all(self) -> None:
        """SIGTERM to every child, SIGKILL to those still running after the grace or at a second signal."""
        running = [slot.process for slot in self._slots if slot.process is not None and slot.process.poll() is None]
        logger.info("stopping {} (waiting up to {:.0f}s; a second Ctrl-C stops them at once)",
                    ", ".join(slot.child.name for slot in self._slots), self._grace)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        while any(process.poll() is None for process in running):
            if self._signals > 1 or time.monotonic() > deadline:
                why = "a second signal" if self._signals > 1 else f"the {self._grace:.0f}s grace ran out"
                logger.warning("{}: killing what is still running", why)
                break
            time.sleep(TICK)
        for process in running:  # its whole group: what a child started must not outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def follow_supervisor(interval: float = 0.5) -> None:
    """In a child of a `Supervisor`: when the supervisor dies (kill -9), stop as on SIGTERM rather than run on
    as an orphan. The variable is removed so that this process's own children do not inherit it."""
    supervisor = os.environ.pop(SUPERVISOR_PID, "")
    if not supervisor.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(interval)
        logger.warning("the supervisor (pid {}) is gone: stopping", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="follow-supervisor", daemon=True).start()
