"""`payments serve --workers N`: Sanic's worker manager stops on SIGINT/SIGTERM from its monitor loop, not from
inside the signal handler.

Sanic's `WorkerManager.shutdown_signal` terminates the workers right in the handler. The handler interrupts the
main thread wherever it is, and the monitor loop spends its time in calls to the multiprocessing manager that holds
the workers' states (`_sync_states`); terminating a worker writes that state through the same manager connection,
so a signal landing mid-call broke the connection and the API exited 1 with a traceback instead of draining and
exiting 0 (seen once in a full suite: tests/e2e/test_scale_out.py). Here the first signal only tells the monitor
loop to terminate (Sanic's own `__TERMINATE__` message, handled between calls); a second one, once the shutdown has
begun, kills the workers as Sanic does.
"""

from __future__ import annotations

from collections.abc import Callable
from signal import Signals
from types import FrameType
from typing import Any, cast

from loguru import logger
from sanic.worker.manager import WorkerManager

#: What Sanic's monitor loop handles by shutting the workers down (`WorkerManager._poll_monitor`).
TERMINATE = "__TERMINATE__"
_sanics_handler = cast(Callable[[Any, int, "FrameType | None"], None], WorkerManager.shutdown_signal)


def shutdown_signal(manager: Any, signum: int, frame: FrameType | None) -> None:
    if getattr(manager, "_shutting_down", False):  # a second signal during the drain: Sanic kills the workers
        _sanics_handler(manager, signum, frame)
        return
    logger.info("received {}: the API stops accepting and drains its requests", Signals(signum).name)
    manager.monitor_publisher.send(TERMINATE)


def install() -> None:
    """Before `Sanic.serve`: the managers it makes install this handler for SIGINT and SIGTERM."""
    WorkerManager.shutdown_signal = shutdown_signal  # type: ignore[method-assign]
