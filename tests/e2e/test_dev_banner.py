"""`payments dev`'s banner (API.md §8: "prints the URL and a dev API key once the stack answers"), on a real run
against PostgreSQL and Redis URLs: when its last line appears, /health/ready already answers 200, and it holds
the URLs, the key and how to stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from tests.conftest import fresh_database
from tests.e2e.conftest import free_port, stack_env

KEY = "sk_banner_test_key_0123456789abcdef"


def another_redis_database(url: str) -> str:
    """The same Redis server, another database: this stack's queues must not take other tests' messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str((int(query.get("db", "0")) + 1) % 16)
        return f"unix://{parts.path}?{urlencode(query)}"  # urlunsplit would write `unix:/path`, which redis-py refuses
    current = int(parts.path.strip("/") or "0")
    return urlunsplit(parts._replace(path=f"/{(current + 1) % 16}"))


def test_the_banner_prints_once_the_api_answers_with_the_key_and_how_to_stop(
    admin_database_url: str, redis_url: str, tmp_path: Path,
) -> None:
    api, mock = free_port(), free_port()
    with fresh_database(admin_database_url, migrate=lambda _: None) as database_url:  # `dev` migrates it
        env = stack_env(database_url, another_redis_database(redis_url), api, PAYMENTS_MOCK_PORT=str(mock),
                        PAYMENTS_DEV_API_KEY=KEY, PAYMENTS_DATA_DIR=str(tmp_path / "data"),
                        PAYMENTS_SERVER_SHUTDOWN_TIMEOUT="5s")
        log = (tmp_path / "dev.log").open("wb")
        dev = subprocess.Popen([sys.executable, "-m", "payments", "dev"], env=env, stdout=subprocess.PIPE,
                               stderr=log)
        assert dev.stdout is not None
        seen: list[str] = []
        readiness: list[int] = []

        def read() -> None:  # each line as it comes; at the banner's last line, ask /health/ready at once
            assert dev.stdout is not None
            for raw in dev.stdout:
                line = raw.decode(errors="replace")
                seen.append(line)
                if "Ctrl-C to stop" in line:
                    try:
                        readiness.append(httpx.get(f"http://127.0.0.1:{api}/health/ready", timeout=5).status_code)
                    except httpx.HTTPError:
                        readiness.append(0)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while not readiness:
                assert dev.poll() is None, (tmp_path / "dev.log").read_text()[-4000:]
                assert time.monotonic() < deadline, f"no banner within 120s: {''.join(seen)}"
                time.sleep(0.05)
            assert readiness == [200]  # the stack answered before the banner said so
            output = "".join(seen)
            banner = output[output.index("Payments API"):]
            assert f"Payments API   http://127.0.0.1:{api}\n" in banner
            assert f"API docs       http://127.0.0.1:{api}/docs\n" in banner
            assert f"Mock providers http://127.0.0.1:{mock}/_mock/charges\n" in banner
            assert f"Dev API key    {KEY}\n" in banner and "Ctrl-C to stop" in banner
            accounts = httpx.get(f"http://127.0.0.1:{api}/api/v1/accounts",
                                 headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
            assert accounts.status_code == 200  # the key it printed works
            assert output.count("Ctrl-C to stop") == 1
        finally:
            dev.send_signal(signal.SIGINT)
            try:
                code = dev.wait(60)
            except subprocess.TimeoutExpired:
                dev.kill()
                code = dev.wait()
            reader.join(10)
            log.close()
        assert code == 0, (tmp_path / "dev.log").read_text()[-4000:]
