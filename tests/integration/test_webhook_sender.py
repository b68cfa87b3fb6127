"""The aiohttp webhook sender against a real local receiver: answers, timeouts, redirects, the SSRF guard."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.webhook_sender import HttpWebhookSender, RefusedDestination, SystemResolver, _guarded_socket, unusable
from core.errors import Unavailable
from tests.integration.tls_servers import make_pki
from tests.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


async def test_answers_are_reported_as_they_came(receiver: Receiver) -> None:
    sender = HttpWebhookSender(allow_private=True)
    receiver.script["/fail"] = [500]
    receiver.script["/moved"] = [302]
    try:
        ok = await sender.post(receiver.url("/ok"), b'{"a":1}', {"X-Test": "1"}, within=5)
        failed = await sender.post(receiver.url("/fail"), b"{}", {}, within=5)
        moved = await sender.post(receiver.url("/moved"), b"{}", {}, within=5)
    finally:
        await sender.aclose()
    assert (ok.ok, ok.status_code, ok.error) == (True, 200, None)
    (got,) = receiver.at("/ok")
    assert got.body == b'{"a":1}' and got.headers["x-test"] == "1"
    assert "accept-encoding" not in got.headers  # asks for no compression: an error's snippet stays readable
    assert "content-type" not in got.headers  # none made up (the worker always sends application/json)
    assert (failed.ok, failed.status_code, failed.error) == (False, 500, "HTTP 500: ok")
    assert (moved.ok, moved.status_code) == (False, 302)  # redirects are not followed
    assert len(receiver.at("/moved")) == 1


async def test_connections_are_kept_alive_between_posts() -> None:
    """A success's answer is read to its end, so its connection goes back to the pool and carries the next POST
    (left unread, httpcore closes it: a new TCP handshake per delivery)."""
    receiver = Receiver(keep_alive=True).start()
    receiver.script["/ok"] = [200, 200, 200, 200, 200, 500]
    sender = HttpWebhookSender(allow_private=True)
    try:
        results = [await sender.post(receiver.url("/ok"), b"{}", {}, within=5) for _ in range(5)]
        failed = await sender.post(receiver.url("/ok"), b"{}", {}, within=5)
    finally:
        await sender.aclose()
        receiver.stop()
    assert [r.status_code for r in [*results, failed]] == [200] * 5 + [500]
    peers = {r.peer for r in receiver.at("/ok")}
    assert len(receiver.at("/ok")) == 6 and len(peers) == 1, peers


class _AlsoResolving(SystemResolver):
    def __init__(self, name: str, address: str) -> None:
        self._name, self._address = name, address

    async def resolve(self, host: str) -> list[str]:
        return [self._address] if host == self._name else await super().resolve(host)


async def test_tls_receivers_are_verified(tmp_path: Path) -> None:
    """HTTPS goes to the address the guard checked, and the certificate is verified against the URL's host name:
    with the receiver's CA trusted the POST lands; with the default roots (certifi) it is an error, not sent."""
    pki = make_pki(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki.cert, pki.key)
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            got.append(await reader.readexactly(length))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/hook"
    trusting = HttpWebhookSender(allow_private=True, tls=ssl.create_default_context(cafile=str(pki.ca)),
                                 resolver=_AlsoResolving("hooks.test", "127.0.0.1"))
    default = HttpWebhookSender(allow_private=True)
    try:
        ok = await trusting.post(url, b'{"tls":1}', {}, within=5)
        unknown_ca = await default.post(url, b'{"tls":2}', {}, within=5)
        # the same server, under a name its certificate does not have
        wrong_name = await trusting.post(url.replace("localhost", "hooks.test"), b'{"tls":3}', {}, within=5)
    finally:
        await trusting.aclose()
        await default.aclose()
        server.close()
    assert (ok.ok, ok.status_code) == (True, 200)
    assert not unknown_ca.ok and "certificate" in (unknown_ca.error or "").lower(), unknown_ca.error
    assert not wrong_name.ok and "hooks.test" in (wrong_name.error or ""), wrong_name.error
    assert got == [b'{"tls":1}']


async def test_a_slow_receiver_is_a_timeout(receiver: Receiver) -> None:
    sender = HttpWebhookSender(allow_private=True)
    answer = threading.Event()
    receiver.script["/slow"] = [answer]  # the receiver answers only when the test lets it
    try:
        # The receiver cannot answer before this returns: coming back at all proves the sender gave up by itself.
        result = await sender.post(receiver.url("/slow"), b"{}", {}, within=0.3)
    finally:
        answer.set()
        await sender.aclose()
    assert (result.ok, result.status_code, result.error) == (False, None, "timed out after 0.3 s")
    assert len(receiver.at("/slow")) == 1


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[object]]]:
    """A server on 127.0.0.1 and ::1 (one port) that answers 200 and notes every connection it accepts."""
    accepted: list[object] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    v4 = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = v4.sockets[0].getsockname()[1]
    v6 = await asyncio.start_server(handle, "::1", port)
    yield port, accepted
    v4.close()
    v6.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "[::ffff:127.0.0.1]", "2130706433",
                                  "127.1", "0x7f.0.0.1", "user@127.0.0.1", "[64:ff9b::7f00:1]", "[::7f00:1]",
                                  "127.0.0.1.", "[::1%25]", "[::1%251]", "[::ffff:127.0.0.1%25]"])
async def test_private_destinations_are_refused_before_connecting(listener: tuple[int, list[object]],
                                                                  host: str) -> None:
    port, accepted = listener
    sender, control = HttpWebhookSender(allow_private=False), HttpWebhookSender(allow_private=True)
    try:
        result = await sender.post(f"http://{host}:{port}/private", b"{}", {}, within=5)
        allowed = await control.post(f"http://127.0.0.1:{port}/x", b"{}", {}, within=5)
    finally:
        await sender.aclose()
        await control.aclose()
    assert not result.ok and result.status_code is None
    assert (result.error or "").startswith("refused: "), result.error
    assert allowed.ok and len(accepted) == 1  # the listener works, and the refused POST never reached it


@pytest.mark.parametrize(("host", "refused"), [("127.0.0.1", True), ("::1", True), ("::1%25", True), ("10.1.2.3", True),
                                               ("8.8.8.8", False), ("2001:4860:4860::8888", False),
                                               ("2001:4860:4860:0:0:0:0:8888", False)])
def test_the_last_check_is_on_the_address_about_to_be_connected(host: str, refused: bool) -> None:
    """Whichever way aiohttp came by an address, its socket factory refuses a private one (or one with a zone)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if refused:
        with pytest.raises(RefusedDestination):
            _guarded_socket((family, socket.SOCK_STREAM, 6, "", (host, 443)))
    else:
        _guarded_socket((family, socket.SOCK_STREAM, 6, "", (host, 443))).close()


async def test_a_2xx_is_success_whatever_its_body_does() -> None:
    """The status decides: a 2xx whose body stalls, breaks off or is huge, or with a long header, is delivered (the
    receiver has it; failing it would send it again), and its connection is dropped."""
    answers = {
        b"/stall": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",  # then nothing
        b"/short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",  # then the connection closes
        b"/huge": b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000,
        b"/header": b"HTTP/1.1 201 Created\r\nX-Long: " + b"y" * 20_000 + b"\r\nContent-Length: 0\r\n\r\n",
    }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1]
            writer.write(answers[path])
            await writer.drain()
            if path == b"/stall":
                await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    sender = HttpWebhookSender(allow_private=True)
    try:
        results = {path: await sender.post(base + path, b"{}", {}, within=3) for path in ("/stall", "/short", "/huge",
                                                                                          "/header")}
    finally:
        await sender.aclose()
        server.close()
    assert {path: (r.ok, r.status_code, r.error) for path, r in results.items()} == {
        "/stall": (True, 200, None), "/short": (True, 200, None), "/huge": (True, 200, None),
        "/header": (True, 201, None)}


async def test_closed_ports_and_unknown_hosts_are_errors_not_exceptions() -> None:
    sender = HttpWebhookSender(allow_private=True)
    try:
        closed = await sender.post("http://127.0.0.1:1/x", b"{}", {}, within=5)
        unknown = await sender.post("http://no-such-host.invalid/x", b"{}", {}, within=5)
    finally:
        await sender.aclose()
    assert closed.status_code is None and closed.error and "ConnectError" in closed.error
    assert unknown.status_code is None and unknown.error and "does not resolve" in unknown.error


@pytest.mark.parametrize(("url", "problem"), [
    ("https://hooks.example.com/in", None), ("http://10.0.0.1:8080/x", None), ("http://[::1]/x", None),
    ("http://127.1/x", "127.1 is not an IPv4 address in dotted decimal (127.0.0.1 is)"),
    ("http://2130706433/x", "2130706433 is not an IPv4 address in dotted decimal (127.0.0.1 is)"),
    ("http:///x", "it has no host"), ("http://127.0.0.1:99999/x", "Port out of range 0-65535"),
    ("http://8.8.8.8./x", "8.8.8.8. is not an IPv4 address in dotted decimal"),
    ("http://[fe80::1%25eth0]/x", "fe80::1%25eth0 has a zone index or an escape in its host"),
])
def test_urls_the_sender_cannot_use_are_named(url: str, problem: str | None) -> None:
    assert unusable(url) == problem


async def test_the_system_resolver() -> None:
    resolver = SystemResolver()
    assert "127.0.0.1" in await resolver.resolve("localhost") or "::1" in await resolver.resolve("localhost")
    assert await resolver.resolve("10.1.2.3") == ["10.1.2.3"]
    assert await resolver.resolve("no-such-host.invalid") == []


@pytest.mark.parametrize(("errno", "temporary"), [(socket.EAI_AGAIN, True), (socket.EAI_FAIL, True),
                                                 (socket.EAI_NONAME, False)])
async def test_a_resolver_failure_is_not_a_verdict_on_the_name(errno: int, temporary: bool) -> None:
    loop = asyncio.get_running_loop()

    async def failing(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(errno, "resolver says no")

    loop.getaddrinfo = failing  # type: ignore[method-assign]  # this test's loop only
    try:
        if temporary:
            with pytest.raises(Unavailable):
                await SystemResolver().resolve("example.com")
        else:
            assert await SystemResolver().resolve("example.com") == []
    finally:
        del loop.getaddrinfo
