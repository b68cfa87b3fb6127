"""`payments dev`'s banner (payments.banner) against a stand-in API: printed only once /health/ready answers 200;
a child that dies first is reported in one line; a stop before then prints nothing; a slow API is reported."""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from payments.banner import Banner, banner_text, base_url
from tests.e2e.conftest import free_port


class Ready(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []  # /health/ready's statuses, in turn; the last one for ever after

    def do_GET(self) -> None:
        status = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        body = b'{"status": "ready"}' if status == 200 else b'{"status": "unavailable", "checks": {"database": false}}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[Callable[[list[int]], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(answers: list[int]) -> str:
        handler = type("Answers", (Ready,), {"answers": list(answers)})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.02)


def test_the_text_names_every_address_the_key_and_how_to_stop() -> None:
    text = banner_text("http://127.0.0.1:8080", "sk_dev", "http://127.0.0.1:8090")
    assert "  Payments API   http://127.0.0.1:8080\n" in text
    assert "  API docs       http://127.0.0.1:8080/docs\n" in text
    assert "  Mock providers http://127.0.0.1:8090/_mock/charges\n" in text and "  Dev API key    sk_dev\n" in text
    assert "curl -H 'Authorization: Bearer sk_dev' http://127.0.0.1:8080/api/v1/accounts" in text
    assert "Ctrl-C to stop" in text
    assert "Mock providers" not in banner_text("http://127.0.0.1:8080", "sk_dev", None)  # when it does not run
    assert base_url("0.0.0.0", 8080) == "http://127.0.0.1:8080" and base_url("::", 80) == "http://[::1]:80"
    assert base_url("localhost", 9000) == "http://localhost:9000"


def test_printed_once_ready_answers_200_and_not_before(api: Callable[[list[int]], str]) -> None:
    url = api([503, 503, 503, 200])
    out = io.StringIO()
    banner = Banner(url, "BANNER", out=out)
    banner.start()
    until(lambda: "BANNER" in out.getvalue(), "the banner")
    banner.stop()
    assert out.getvalue() == "BANNER\n"  # three 503s first: nothing, then the banner, once


def test_a_child_dying_first_is_reported_once_and_the_banner_still_comes(api: Callable[[list[int]], str]) -> None:
    out = io.StringIO()
    port = free_port()  # nothing listens yet: the API is down
    banner = Banner(f"http://127.0.0.1:{port}", "BANNER", out=out)
    banner.start()
    banner.child_exited("serve", "(pid 7) exited with exit code 1 after 0.4s")
    banner.child_exited("serve", "(pid 8) exited with exit code 1 after 0.4s")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.startswith("payments dev: serve (pid 7) exited with exit code 1 after 0.4s "
                                                     f"before the API answered http://127.0.0.1:{port}/health/ready")
    assert "BANNER" not in text
    banner.stop()
    time.sleep(0.5)  # several polls' worth: a stopped banner stays silent
    assert "BANNER" not in out.getvalue()

    url = api([200])
    out = io.StringIO()
    banner = Banner(url, "BANNER", out=out)
    banner.child_exited("worker", "could not be started (no such file)")
    banner.start()
    until(lambda: "BANNER" in out.getvalue(), "the banner after a restart")
    banner.child_exited("worker", "(pid 9) exited with exit code 1 after 40.0s")  # after the banner: not reported
    assert out.getvalue().count("payments dev:") == 1


def test_a_stop_before_ready_prints_nothing(api: Callable[[list[int]], str]) -> None:
    out = io.StringIO()
    banner = Banner(api([503]), "BANNER", out=out, slow=0.3)
    banner.start()
    until(lambda: "not ready after" in out.getvalue(), "the slow-API note")
    assert "503" in out.getvalue() and '"database": false' in out.getvalue()
    banner.stop()
    time.sleep(0.5)
    assert "BANNER" not in out.getvalue() and out.getvalue().count("\n") == 1
