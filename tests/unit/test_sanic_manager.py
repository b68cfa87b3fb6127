"""`payments serve --workers N` stops from Sanic's monitor loop: the first SIGTERM/SIGINT only asks it to (so the
handler never interrupts the loop's calls to the state manager), a second one during the drain kills the workers."""

from __future__ import annotations

import signal
from typing import Any

from sanic.worker.manager import WorkerManager

from payments import sanic_manager


class FakeManager:
    def __init__(self, shutting_down: bool) -> None:
        self._shutting_down = shutting_down
        self.sent: list[Any] = []
        self.calls: list[str] = []
        self.monitor_publisher = self
        self.processes: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def kill(self) -> None:
        self.calls.append("kill")


def test_the_first_signal_asks_the_monitor_loop_to_terminate_and_touches_no_worker() -> None:
    manager = FakeManager(shutting_down=False)
    sanic_manager.shutdown_signal(manager, signal.SIGTERM, None)
    assert manager.sent == [sanic_manager.TERMINATE] and manager.calls == []


def test_a_second_signal_during_the_drain_kills_the_workers_as_sanic_does() -> None:
    manager = FakeManager(shutting_down=True)
    sanic_manager.shutdown_signal(manager, signal.SIGINT, None)
    assert manager.calls == ["kill"] and manager.sent == []


def test_install_makes_it_the_handler_of_every_manager(monkeypatch: Any) -> None:
    monkeypatch.setattr(WorkerManager, "shutdown_signal", WorkerManager.shutdown_signal)  # undone after the test
    sanic_manager.install()
    assert WorkerManager.shutdown_signal is sanic_manager.shutdown_signal
