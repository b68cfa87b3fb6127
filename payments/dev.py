"""`payments dev` (what `make run` runs): migrate, a development key, and every process until Ctrl-C."""

from __future__ import annotations

import asyncio
import time

from app.bootstrap import Endpoints, data_dir
from app.settings import Settings
from payments.banner import SLOW, Banner, banner_text, base_url
from payments.keys import create_key
from payments.processes import STOP_MARGIN, child_environment, cmd_migrate, payments_command
from payments.supervisor import Child, Supervisor


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
    """Migrate, then run the API (and every background process) until Ctrl-C or SIGTERM, restarting any of them
    that exits; a second Ctrl-C stops them at once. The URL, the key and how to stop are printed once the API
    answers /health/ready. The embedded servers stop after them (in `payments.cli`)."""
    cmd_migrate(settings, endpoints)
    key = _dev_key(settings, endpoints)
    env = child_environment(settings, endpoints)  # the secrets key: the configured one, or the data dir's
    names = ["serve", "worker"]
    if not (settings.providers.stripe_url and settings.providers.paypal_url):
        names.append("mock-providers")  # the providers' default base URLs point at it
    url = base_url(settings.server.host, settings.server.port)
    mock = base_url(settings.mock.host, settings.mock.port) if "mock-providers" in names else None
    banner = Banner(url, banner_text(url, key, mock))
    # The API first: on a small machine the worker's and the mock providers' start-up (imports, mostly) would
    # compete with it for the CPU, and nothing the API answers waits for them. They start once it answers, or
    # after SLOW seconds if it does not (their logs may say why).
    limit = time.monotonic() + SLOW

    def api_up() -> bool:
        return banner.ready.is_set() or time.monotonic() > limit

    children = [Child(name, payments_command(name), env, None if name == "serve" else api_up) for name in names]
    supervisor = Supervisor(children, grace=settings.server.shutdown_timeout + STOP_MARGIN,
                            on_exit=banner.child_exited, on_stop=banner.stop)
    banner.start()
    try:
        return supervisor.run()
    finally:
        banner.stop()
