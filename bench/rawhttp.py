"""A small HTTP/1.1 keep-alive client for the load generators: POST JSON, read a Content-Length answer.

httpx spends most of a benchmark generator's CPU in its connection pool (a profile of bench/payments.py at 16 in
flight: 62 % of the generator's samples, `_assign_requests_to_connections` and `has_expired` on every request),
and the generator shares the machine's two cores with what it measures. This client does only what the
benchmarks need, as bench/aioload.py does for the transfer load: one request at a time per connection, idle
connections reused (one the server closed meanwhile is dropped, or the request sent again on a fresh one if
the close is seen only as no answer), `Content-Length` bodies (the API sends no other kind to these requests),
and the same `post(path, json=..., headers=...)` and `request(method, path, json=..., headers=...)` calls and
answer (`status_code`, `json()`, `text`) as httpx's, so `payments.send` and the soak take either.

    async with RawHttp("http://127.0.0.1:8000", headers={"Authorization": "Bearer ..."}) as http:
        answer = await http.post("/api/v1/payments", json={...}, headers={"Idempotency-Key": "..."})
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


class RawAnswer:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class RawHttp:
    """Requests to one `base_url` (http only) over a pool of keep-alive connections, each answer read within
    `timeout` seconds (`TimeoutError` otherwise, and the connection is dropped)."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"RawHttp speaks plain http to a host: {base_url!r}")
        self._host, self._port = url.hostname, url.port or 80
        self._timeout = timeout
        fixed = {"Host": f"{self._host}:{self._port}", **(headers or {})}
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> RawHttp:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    async def post(self, path: str, *, json: Any = None, headers: dict[str, str] | None = None) -> RawAnswer:
        return await self.request("POST", path, json=json, headers=headers)

    async def request(self, method: str, path: str, *, json: Any = None,
                      headers: dict[str, str] | None = None) -> RawAnswer:
        """`method path` with `json` as its body (none if None), on an idle connection or a new one."""
        body = b"" if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        typed = "Content-Type: application/json\r\n" if json is not None else ""
        request = (f"{method} {path} HTTP/1.1\r\n{self._head}{extra}{typed}"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof():
                try:
                    return await self._exchange(reader, writer, request)
                except Unanswered:
                    # The server closed this idle connection as it was reused, before a byte of answer (as httpx
                    # does, the request goes once more on a fresh one; it carries its Idempotency-Key).
                    break
            writer.close()  # closed by the server while it was idle
        return await self._exchange(*await asyncio.open_connection(self._host, self._port), request)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes) -> RawAnswer:
        try:
            writer.write(request)
            answer, keep = await asyncio.wait_for(_read_answer(reader), timeout=self._timeout)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return answer


class Unanswered(ConnectionError):
    """The connection closed before a byte of the answer arrived."""


async def _read_answer(reader: asyncio.StreamReader) -> tuple[RawAnswer, bool]:
    """The answer on `reader`, and whether its connection may carry the next request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        if isinstance(error, asyncio.IncompleteReadError) and error.partial:
            raise
        raise Unanswered(f"the connection closed before any answer: {error!r}") from error
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    keep = lines[0].startswith(b"HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            options = {option.strip() for option in value.split(b",")}
            keep = b"close" not in options and (keep or b"keep-alive" in options)
        elif name == b"transfer-encoding" and value != b"identity":
            raise ValueError(f"RawHttp reads Content-Length answers only, not {value.decode()!r}")
    if length is None:
        if not (status < 200 or status in (204, 304)):  # these have no body; any other needs its length here
            raise ValueError(f"RawHttp reads Content-Length answers only; this {status} has none")
        length = 0
    return RawAnswer(status, await reader.readexactly(length) if length else b""), keep
