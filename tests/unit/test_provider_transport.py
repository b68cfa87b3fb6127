"""`AiohttpTransport`, the provider clients' HTTP transport, on real sockets: what goes out, what comes back, and
whether a failure may have reached the provider (`SendFailed.sent`), which decides a retry's safety upstream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters.providers.transport import AiohttpTransport, SendFailed

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(serve: Serve) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A local server running `serve` on each connection; yields its base URL and the requests it read."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(b"<connection>")
        await handle(reader, writer)

    listener = await asyncio.start_server(recording, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        listener.close()
        await listener.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


def answering(status: int, body: bytes, seen: list[bytes], extra: bytes = b"") -> Serve:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: every request on the connection
            seen.append(await read_request(reader))
            writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
                status, len(body), extra, body))
            await writer.drain()
    return serve


async def test_a_request_goes_out_as_given_and_its_whole_answer_comes_back_on_one_kept_connection() -> None:
    requests: list[bytes] = []
    async with server(answering(201, b'{"id":"pi_1"}', requests)) as (base, connections):
        transport = AiohttpTransport()
        try:
            for n in range(3):
                status, body = await transport.send(
                    "POST", f"{base}/v2/captures/CAP%2F1/refund?q=a%27b", {"Idempotency-Key": f"k{n}",
                                                                           "Content-Type": "application/json"},
                    b'{"amount":1}', 5.0)
                assert (status, body) == (201, b'{"id":"pi_1"}')
        finally:
            await transport.aclose()
    assert connections.count(b"<connection>") == 1  # the pool kept the connection alive between calls
    first = requests[0]
    assert first.startswith(b"POST /v2/captures/CAP%2F1/refund?q=a%27b HTTP/1.1\r\n")  # sent as encoded, unchanged
    assert b"\r\nIdempotency-Key: k0\r\n" in first and b"\r\nContent-Type: application/json\r\n" in first
    assert first.endswith(b'\r\n\r\n{"amount":1}')


async def test_a_redirect_is_an_answer_not_followed() -> None:
    requests: list[bytes] = []
    async with server(answering(302, b"", requests, b"Location: /elsewhere\r\n")) as (base, _):
        transport = AiohttpTransport()
        try:
            assert await transport.send("GET", f"{base}/v1/x", {}, None, 5.0) == (302, b"")
        finally:
            await transport.aclose()
    assert len(requests) == 1


async def test_a_refused_connection_was_not_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens there
    transport = AiohttpTransport()
    try:
        with pytest.raises(SendFailed, match="ConnectError") as failed:
            await transport.send("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}", 5.0)
    finally:
        await transport.aclose()
    assert (failed.value.sent, failed.value.timed_out) == (False, False)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(30)


async def test_no_answer_in_time_may_have_been_processed() -> None:
    async with server(silent) as (base, _):
        transport = AiohttpTransport()
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(SendFailed) as failed:
                await transport.send("POST", f"{base}/v1/x", {}, b"{}", 0.3)
            assert asyncio.get_running_loop().time() - started < 5
        finally:
            await transport.aclose()
    assert (failed.value.sent, failed.value.timed_out) == (True, True)


async def test_waiting_for_a_free_connection_past_the_deadline_was_not_sent() -> None:
    async with server(silent) as (base, _):
        transport = AiohttpTransport(pool=1)
        try:
            busy = asyncio.create_task(transport.send("POST", f"{base}/v1/x", {}, b"{}", 5.0))
            await asyncio.sleep(0.2)  # holds the one connection, unanswered
            with pytest.raises(SendFailed, match="ConnectTimeout") as failed:
                await transport.send("POST", f"{base}/v1/y", {}, b"{}", 0.3)
            busy.cancel()
            with contextlib.suppress(asyncio.CancelledError, SendFailed):
                await busy
        finally:
            await transport.aclose()
    assert (failed.value.sent, failed.value.timed_out) == (False, False)


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)  # then closes without answering


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"hello there\r\n\r\n")
    await writer.drain()


async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":")  # then closes, 94 bytes short
    await writer.drain()


@pytest.mark.parametrize("serve", [hang_up, not_http, cut_short])
async def test_a_connection_broken_after_sending_may_have_been_processed(serve: Serve) -> None:
    async with server(serve) as (base, _):
        transport = AiohttpTransport()
        try:
            with pytest.raises(SendFailed) as failed:
                await transport.send("POST", f"{base}/v1/x", {}, b"{}", 5.0)
        finally:
            await transport.aclose()
    assert (failed.value.sent, failed.value.timed_out) == (True, False), failed.value.what


async def test_a_closed_transport_refuses_to_send() -> None:
    transport = AiohttpTransport()
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.send("GET", "http://127.0.0.1:9/x", {}, None, 1.0)


async def test_a_proxy_from_the_environment_carries_requests_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through_proxy: list[bytes] = []
    direct: list[bytes] = []
    async with server(answering(200, b"{}", through_proxy)) as (proxy, _), \
            server(answering(200, b"{}", direct)) as (provider, _):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "localhost")
        transport = AiohttpTransport()
        try:
            assert await transport.send("GET", "http://provider.invalid/v1/x?a=1", {}, None, 5.0) == (200, b"{}")
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            assert await transport.send("GET", f"{provider}/v1/y", {}, None, 5.0) == (200, b"{}")
        finally:
            await transport.aclose()
    assert [r.split(b"\r\n")[0] for r in through_proxy] == [b"GET http://provider.invalid/v1/x?a=1 HTTP/1.1"]
    assert [r.split(b"\r\n")[0] for r in direct] == [b"GET /v1/y HTTP/1.1"]
