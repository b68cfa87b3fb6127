"""RabbitMQ for the tests: the machine's server (started if it is down), and a virtual host of a test's own.

A vhost has its own queues, so a stack on one never sees another's messages; it is deleted on the way out,
whatever happened. RabbitMQ is found at PAYMENTS_TEST_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

SERVER_URL = os.environ.get("PAYMENTS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    with contextlib.suppress(OSError), socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672),
                                                                timeout=2):
        return True
    return False


def _ctl(*args: str, timeout: float = 60) -> None:
    rabbitmqctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    done = subprocess.run([rabbitmqctl, "-q", *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"


def ensure_rabbitmq() -> None:
    """Start the machine's RabbitMQ if nothing answers on its port (as `.ci/run` does), and wait for it."""
    if _answers(SERVER_URL):
        return
    for start in (["service", "rabbitmq-server", "start"], ["rabbitmq-server", "-detached"]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run(start, capture_output=True, timeout=120, check=False).returncode == 0:
                break
    _ctl("await_startup", "--timeout", "90", timeout=120)
    deadline = time.monotonic() + 30
    while not _answers(SERVER_URL):
        assert time.monotonic() < deadline, f"RabbitMQ does not answer at {SERVER_URL}"
        time.sleep(0.2)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """The URL of a fresh vhost that the server URL's user may use fully; the vhost is deleted afterwards."""
    ensure_rabbitmq()
    parts = urlsplit(SERVER_URL)
    name = f"payments-test-{uuid.uuid4().hex[:12]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), "", ""))
    finally:
        _ctl("delete_vhost", name)
