"""A fake Payments API on a real socket for the client's tests: scripted answers, every request recorded."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs


@attrs.frozen
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class Answer:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = attrs.field(factory=dict)
    drop: bool = False  # close the connection without answering

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


def problem(slug: str, status: int, *, retry_after: str | None = None, **extra: Any) -> Answer:
    body = {"type": f"/problems/{slug}", "title": slug.replace("_", " "), "status": status,
            "detail": f"detail of {slug}", "request_id": "req-1", **extra}
    headers = {"Content-Type": "application/problem+json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Answer(status, body, headers)


@attrs.define
class FakeApi:
    """Answers from `script` in order (the last one forever once it is down to one), recording `seen`."""

    url: str = ""
    script: deque[Answer] = attrs.field(factory=deque)
    seen: list[Seen] = attrs.field(factory=list)

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def next(self) -> Answer:
        return self.script.popleft() if len(self.script) > 1 else self.script[0]


def _handler(fake: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            fake.seen.append(Seen(self.command, parts.path, parse_qsl(parts.query, keep_blank_values=True),
                                  {k.lower(): v for k, v in self.headers.items()}, body))
            answer = fake.next()
            if answer.drop:
                self.close_connection = True
                self.connection.close()
                return
            payload = answer.encoded()
            self.send_response(answer.status)
            headers = {"Content-Type": "application/json", **answer.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


def serve_fake() -> Iterator[FakeApi]:
    """Start a fake on a free port; stop it when the generator closes."""
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


_UUID = "00000000-0000-4000-8000-000000000001"


def sample(tp: Any) -> Any:
    """A JSON value of type `tp` as the server would send it (an attrs shape: every field filled)."""
    import enum
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if attrs.has(tp):
        hints = typing.get_type_hints(tp)
        return {f.metadata.get("json_name", f.name): _field_sample(f, hints[f.name]) for f in attrs.fields(tp)}
    if origin in (typing.Union, types.UnionType):
        return sample(next(arg for arg in args if arg is not type(None)))
    if origin is typing.Literal:
        return args[0]
    if origin is list:
        return [sample(args[0])]
    if origin is dict or tp is typing.Any:
        return {}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp)).value
    return {bool: True, int: 1, str: "x"}[tp]


def _field_sample(field: Any, tp: Any) -> Any:
    fmt = field.metadata.get("openapi", {}).get("format")
    if fmt == "uuid":
        return _UUID
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    return sample(tp)
