"""A PostgreSQL primary and a streaming replica of it, each on a free port, for the read replica tests.

`initdb` and `pg_ctl` start the primary (wal_level=replica, replication allowed from 127.0.0.1), `pg_basebackup -R`
copies it into the replica's directory, which starts as a hot standby. Both run as the `postgres` system user when
the tests run as root (the postmaster refuses root). `close` stops both and removes the directory, whatever state
they are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import attrs

from tests.e2e.conftest import free_port

#: The postmaster refuses to run as root: as root, the servers run as this system user.
SERVER_USER = "postgres"


def _binary(name: str) -> str:
    """A PostgreSQL program: on PATH, else in `pg_config --bindir` (Debian keeps initdb and pg_ctl there)."""
    found = shutil.which(name)
    if found is None:
        bindir = subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True).stdout.strip()
        found = str(Path(bindir) / name)
    return found


def _as_server_user(command: list[str]) -> list[str]:
    command = [_binary(command[0]), *command[1:]]
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def _run(*command: str) -> None:
    subprocess.run(_as_server_user(list(command)), check=True, capture_output=True, timeout=120)


@attrs.define
class Server:
    data: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run("pg_ctl", "-D", str(self.data), "-l", str(self.data.parent / f"{self.data.name}.log"), "-w", "-t", "90",
             "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            _run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")


@attrs.define
class ReplicaPair:
    root: Path
    primary: Server
    replica: Server

    async def caught_up(self, timeout: float = 60) -> None:
        """Wait until the replica has replayed everything the primary had written when this was called."""
        primary = await asyncpg.connect(self.primary.url())
        try:
            target = await primary.fetchval("SELECT pg_current_wal_lsn()")
        finally:
            await primary.close()
        replica = await asyncpg.connect(self.replica.url())
        try:
            async with asyncio.timeout(timeout):
                while await replica.fetchval("SELECT pg_last_wal_replay_lsn() < $1::pg_lsn", target):
                    await asyncio.sleep(0.05)
        finally:
            await replica.close()

    async def pause_replay(self) -> None:
        """Pause the replica's replay and wait until it has stopped applying WAL."""
        replica = await asyncpg.connect(self.replica.url())
        try:
            await replica.execute("SELECT pg_wal_replay_pause()")
            async with asyncio.timeout(30):
                while await replica.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
                    await asyncio.sleep(0.05)
        finally:
            await replica.close()

    async def resume_replay(self) -> None:
        replica = await asyncpg.connect(self.replica.url())
        try:
            await replica.execute("SELECT pg_wal_replay_resume()")
        finally:
            await replica.close()

    def close(self) -> None:
        for server in (self.replica, self.primary):
            with contextlib.suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def replica_pair() -> Iterator[ReplicaPair]:
    """A running primary and its hot standby replica, both stopped and deleted on leaving."""
    root = Path(tempfile.mkdtemp(prefix="payments-replica-"))
    pair = ReplicaPair(root, Server(root / "primary", free_port()), Server(root / "replica", free_port()))
    try:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        _run("initdb", "-D", str(pair.primary.data), "-U", "postgres", "-A", "trust", "--no-sync")
        settings = (f"listen_addresses = '127.0.0.1'\nport = {pair.primary.port}\nunix_socket_directories = '{root}'\n"
                    "wal_level = replica\nmax_wal_senders = 4\nfsync = off\nhot_standby = on\n")
        with (pair.primary.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        with (pair.primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        pair.primary.start()
        _run("pg_basebackup", "-h", "127.0.0.1", "-p", str(pair.primary.port), "-U", "postgres",
             "-D", str(pair.replica.data), "-R", "-X", "stream", "--no-sync")
        with (pair.replica.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {pair.replica.port}\n")
        pair.replica.start()
        yield pair
    finally:
        pair.close()
