"""A TCP proxy in front of a Redis master that can hold back the replication stream, and a master + replica +
Sentinel set behind it: the replica and the Sentinel reach the master through the proxy, so a test can make the
master acknowledge writes that its replica never receives (the replica's link stalls, as on a slow network)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.conftest import free_port
from tests.redis_servers import (
    SentinelSet,
    Server,
    _stop,
    watching,
)


class LinkProxy:
    """Forwards 127.0.0.1:`port` to the master; `hold()` keeps what the master sends to a replica (a connection
    that sent `PSYNC`/`SYNC`) in the proxy instead of passing it on; the held bytes die with the connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.holding = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="link-proxy").start()

    def hold(self) -> None:
        self.holding.set()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets, self._sockets = [self.listener, *self._sockets], []
        for each in sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:  # the master is dead: refuse as it would
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            replica = threading.Event()  # set once this connection is a replica's
            threading.Thread(target=self._pump, args=(client, server, replica, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, replica, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replica: threading.Event, downstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not downstream and b"$5\r\nPSYNC\r\n" in data:  # what a replica sends to start its sync
                    replica.set()
                if downstream and replica.is_set() and self.holding.is_set():
                    continue  # held back: the replica never sees it
                sink.sendall(data)
        for each in (source, sink):  # one side closed: close both, as a broken link does
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxied_sentinel_set(directory: Path) -> Iterator[tuple[SentinelSet, LinkProxy]]:
    """A master, its replica and a Sentinel (quorum 1), the replica and the Sentinel both reaching the master through
    a `LinkProxy`; everything is stopped on the way out."""
    started: list[Server] = []
    proxy: LinkProxy | None = None
    try:
        master = Server(directory / "master", free_port(), []).start()
        started.append(master)
        proxy = LinkProxy(master.port)
        replica = Server(directory / "replica", free_port(), ["--replicaof", "127.0.0.1", str(proxy.port)]).start()
        started.append(replica)
        sentinel = watching(directory / "sentinel", proxy.port, replica, started)
        yield SentinelSet(master, replica, sentinel), proxy
    finally:
        if proxy is not None:
            proxy.close()
        _stop(started)
