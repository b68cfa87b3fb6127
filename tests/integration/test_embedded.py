"""The embedded servers after a crash: a PostgreSQL `postmaster.pid` naming some other live process (pid reuse) is
stale, not a running server; a Redis whose holder was killed is reused, then stopped by its new holder."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from adapters.embedded import EmbeddedPostgres, EmbeddedRedis, processes_of

HOLD_REDIS = """
import sys, time
from pathlib import Path
from adapters.embedded import EmbeddedRedis
EmbeddedRedis(Path(sys.argv[1]))
print("up", flush=True)
time.sleep(600)
"""


@pytest.fixture
def data() -> Iterator[Path]:
    """Outside pytest's tree: PostgreSQL runs as a user of its own (when the tests run as root) that must reach it."""
    path = Path(tempfile.mkdtemp(prefix="payments-embedded-"))
    try:
        yield path
    finally:
        for name in ("postgres", "redis-server"):
            for each in processes_of(str(path), name):
                with contextlib.suppress(psutil.Error):
                    each.kill()
        shutil.rmtree(path, ignore_errors=True)


def test_a_postmaster_pid_naming_another_live_process_is_stale(data: Path) -> None:
    server = EmbeddedPostgres(data)
    pidfile = server.path / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    server.stop()
    assert not pidfile.exists() and not processes_of(str(server.path), "postgres")
    impostor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        pidfile.write_text("\n".join([str(impostor.pid), *lines[1:]]) + "\n")  # as after a reboot reused the pid
        server = EmbeddedPostgres(data)
        try:
            with psycopg.connect(server.url) as connection:
                assert connection.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop()
        assert impostor.poll() is None  # nobody touched the process that merely has the old pid
    finally:
        impostor.kill()
        impostor.wait()
    assert not processes_of(str(server.path), "postgres")


def test_a_redis_whose_holder_was_killed_is_reused_then_stopped(data: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_REDIS, str(data)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"up\n"
    finally:
        holder.kill()
        holder.wait()
    socket = str(data / "redis" / "redis.sock")
    orphans = processes_of(socket, "redis-server")
    assert len(orphans) == 1  # what a kill -9 leaves behind
    server = EmbeddedRedis(data)
    assert redis.Redis(unix_socket_path=socket).ping()
    assert processes_of(socket, "redis-server") == orphans  # reused, not replaced
    server.stop()  # the only live holder now: it stops the server
    assert psutil.wait_procs(orphans, timeout=15)[1] == []
