"""`payments dev` (what `make run` runs): migrate, a development key, and every process until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

from loguru import logger

from app.bootstrap import Endpoints, data_dir
from app.settings import Settings
from payments.admin import create_key
from payments.processes import cmd_migrate


def _dev_key(settings: Settings, endpoints: Endpoints) -> str:
    """PAYMENTS_DEV_API_KEY, or the key kept in the data directory from an earlier run, or a new one."""
    from core.tenants import generate_key

    path = data_dir(settings) / "dev_api_key"
    plain = settings.dev_api_key or (path.read_text().strip() if path.exists() else "") or generate_key()
    asyncio.run(create_key(settings, endpoints, "dev", ["read", "write"], plain))
    if not settings.dev_api_key:
        path.write_text(plain + "\n")
        path.chmod(0o600)
    return plain


def cmd_dev(settings: Settings, endpoints: Endpoints) -> int:
    """Migrate, then run the API (and every background process) until Ctrl-C or SIGTERM."""
    cmd_migrate(settings, endpoints)
    key = _dev_key(settings, endpoints)
    env = {**os.environ, "PAYMENTS_DATABASE_URL": endpoints.database_url, "PAYMENTS_REDIS_URL": endpoints.redis_url}
    names = ["serve", "worker"]
    if not (settings.providers.stripe_url and settings.providers.paypal_url):
        names.append("mock-providers")  # the providers' default base URLs point at it
    children = [subprocess.Popen([sys.executable, "-m", "payments", name], env=env) for name in names]
    url = f"http://{settings.server.host}:{settings.server.port}"
    stopping = False

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mock = f"http://{settings.mock.host}:{settings.mock.port}/_mock/charges" if "mock-providers" in names else "-"
    print(f"\n  Payments API   {url}\n  API docs       {url}/docs\n  Mock providers {mock}\n  Dev API key    {key}\n"
          f"  Try it         curl -H 'Authorization: Bearer {key}' {url}/api/v1/accounts\n", flush=True)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                logger.error("process {} exited with {}; stopping", child.args, child.returncode)
                stopping, code = True, 1
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.server.shutdown_timeout + 5
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return code
