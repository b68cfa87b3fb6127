"""A real local webhook receiver for tests: an HTTP server thread that records every POST and
answers from a per-path script (status codes, a delay, or a hold until the test releases it)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    peer: tuple[str, int] | None = None  # the sender's address and port: which connection carried the request


class Receiver:
    """`script[path]` is a list of answers consumed one per request, the last repeating: an int is a
    status code (a 3xx one redirects to `/redirected`), a float is seconds to wait before answering 200,
    a `threading.Event` holds the answer (200) until the test sets it. Default 200. With `keep_alive`, it
    speaks HTTP/1.1 and keeps each connection open for the sender's next request (default: HTTP/1.0, one
    request per connection)."""

    def __init__(self, *, keep_alive: bool = False) -> None:
        self.received: list[Received] = []
        self.script: dict[str, list[int | float | threading.Event]] = defaultdict(list)
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.time(), self.client_address[:2]))
                    receiver._lock.notify_all()
                    script = receiver.script.get(self.path) or [200]
                    answer = script.pop(0) if len(script) > 1 else script[0]
                if isinstance(answer, threading.Event):
                    answer.wait()
                    answer = 200
                if isinstance(answer, float):
                    time.sleep(answer)
                    answer = 200
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the sender gave up waiting
                    self.send_response(answer)
                    if 300 <= answer < 400:
                        self.send_header("Location", "/redirected")
                    body = b"" if answer in (204, 304) else b"ok"  # these answers have no body (RFC 9110)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until `path` has received `count` requests (or fail after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len([r for r in self.received if r.path == path]) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{path} got {len(self.at_unlocked(path))} of {count} requests in {timeout} s"
                self._lock.wait(left)
            return [r for r in self.received if r.path == path]

    def at_unlocked(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]
