"""bench/rawhttp.py, the payments benchmark's HTTP client: what it sends, what it reads, when it reuses a
connection. A client that misread an answer or mixed two answers up would make the benchmark count wrongly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from tests.bench_modules import load_bench

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def rawhttp() -> ModuleType:
    return load_bench("rawhttp")


class Server:
    """Answers each request with its own method, path, headers and body as JSON; `close_after` requests on a
    connection, it says `Connection: close` and closes; `chunked` answers chunked."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.close_after = 0
        self.framing = "length"  # or "chunked"; "none": no framing header; "cut": a length, then a close
        self.silent_close_after = 0  # answers this many on a connection, then closes it unannounced
        self.drop_request = 0  # the request of this number on a connection is read, then the connection closed
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:] if line)
                body = await reader.readexactly(int(headers.get("Content-Length", "0")))
                served += 1
                self.requests += 1
                if served == self.drop_request:
                    break
                last = served == self.close_after
                answer = json.dumps({"request": lines[0], "headers": headers, "body": body.decode()}).encode()
                framing = {"chunked": b"Transfer-Encoding: chunked\r\n", "none": b""}.get(
                    self.framing, b"Content-Length: %d\r\n" % len(answer))
                writer.write(b"HTTP/1.1 201 Created\r\n" + framing + (b"Connection: close\r\n" if last else b"")
                             + b"\r\n")
                if self.framing == "cut":
                    break
                writer.write(answer)
                await writer.drain()
                if last or served == self.silent_close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    serving = Server()
    listener = await asyncio.start_server(serving.handle, "127.0.0.1", 0)
    serving.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield serving


async def test_posts_json_with_the_fixed_and_the_given_headers_over_one_kept_connection(
        rawhttp: ModuleType, server: Server) -> None:
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}", headers={"Authorization": "Bearer k"}) as http:
        answers = [await http.post("/api/v1/payments", json={"n": n}, headers={"Idempotency-Key": f"key-{n}"})
                   for n in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201] and server.connections == 1
    for n, answer in enumerate(answers):
        seen = answer.json()
        assert seen["request"] == "POST /api/v1/payments HTTP/1.1"
        assert seen["headers"]["Authorization"] == "Bearer k" and seen["headers"]["Idempotency-Key"] == f"key-{n}"
        assert seen["headers"]["Content-Type"] == "application/json"
        assert json.loads(seen["body"]) == {"n": n} and answer.text == answer.content.decode()


async def test_any_method_and_no_body(rawhttp: ModuleType, server: Server) -> None:
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        seen = (await http.request("GET", "/api/v1/payments/1")).json()
    assert seen["request"] == "GET /api/v1/payments/1 HTTP/1.1" and seen["body"] == ""
    assert seen["headers"]["Content-Length"] == "0" and "Content-Type" not in seen["headers"]


async def test_concurrent_requests_get_their_own_connections_and_answers(rawhttp: ModuleType,
                                                                        server: Server) -> None:
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        answers = await asyncio.gather(*(http.post("/p", json={"n": n}) for n in range(5)))
        assert [json.loads(a.json()["body"])["n"] for a in answers] == list(range(5))
        assert server.connections == 5
        await asyncio.gather(*(http.post("/p", json={}) for _ in range(5)))  # the five idle ones, reused
    assert server.connections == 5


async def test_a_connection_the_server_closes_is_not_reused(rawhttp: ModuleType, server: Server) -> None:
    server.close_after = 1
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        for _ in range(3):
            assert (await http.post("/p", json={})).status_code == 201
    assert server.connections == 3


async def test_an_idle_connection_the_server_closed_costs_no_error(rawhttp: ModuleType, server: Server) -> None:
    server.silent_close_after = 1  # as a keep-alive timeout does, without a word
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        for _ in range(3):
            assert (await http.post("/p", json={})).status_code == 201
            await asyncio.sleep(0.05)  # the close reaches the client
    assert server.connections == 3 and server.requests == 3


async def test_a_reused_connection_closed_before_any_answer_sends_again_once_on_a_fresh_one(
        rawhttp: ModuleType, server: Server) -> None:
    server.drop_request = 2  # the second request on a connection meets the server's close
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        assert (await http.post("/p", json={"n": 1})).status_code == 201
        again = await http.post("/p", json={"n": 2})
        assert again.status_code == 201 and json.loads(again.json()["body"]) == {"n": 2}
        assert server.connections == 2
    server.drop_request = 1
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        with pytest.raises(rawhttp.Unanswered):  # a fresh connection that fails is an error: no retry
            await http.post("/p", json={"n": 3})
    assert server.connections == 3 and server.requests == 4  # two answered, two dropped


async def test_an_answer_cut_after_its_head_is_an_error_not_sent_again(rawhttp: ModuleType, server: Server) -> None:
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        assert (await http.post("/p", json={})).status_code == 201
        server.framing = "cut"
        with pytest.raises(asyncio.IncompleteReadError):  # on the reused connection, yet the answer had begun
            await http.post("/p", json={})
    assert server.requests == 2


@pytest.mark.parametrize(("status_line", "connection", "keep"), [
    ("HTTP/1.1 201 Created", "", True), ("HTTP/1.1 201 Created", "close", False),
    ("HTTP/1.1 201 Created", "keep-alive, close", False), ("HTTP/1.1 201 Created", "Keep-Alive", True),
    ("HTTP/1.0 200 OK", "", False), ("HTTP/1.0 200 OK", "keep-alive", True),
])
async def test_whether_a_connection_is_kept(rawhttp: ModuleType, status_line: str, connection: str,
                                            keep: bool) -> None:
    reader = asyncio.StreamReader()
    header = f"Connection: {connection}\r\n" if connection else ""
    reader.feed_data(f"{status_line}\r\nContent-Length: 2\r\n{header}\r\n{{}}".encode())
    reader.feed_eof()
    answer, kept = await rawhttp._read_answer(reader)
    assert (answer.status_code, answer.json(), kept) == (int(status_line.split()[1]), {}, keep)


async def test_an_answer_it_cannot_frame_is_an_error_not_a_misread(rawhttp: ModuleType, server: Server) -> None:
    server.framing = "chunked"
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        with pytest.raises(ValueError, match="chunked"):
            await http.post("/p", json={})
    server.framing = "none"
    async with rawhttp.RawHttp(f"http://127.0.0.1:{server.port}") as http:
        with pytest.raises(ValueError, match="201 has none"):
            await http.post("/p", json={})
    with pytest.raises(ValueError, match="plain http"):
        rawhttp.RawHttp("https://127.0.0.1:1")
