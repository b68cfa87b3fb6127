"""How long the README's first `make run` takes from a fresh clone: install, start-up, ready, first payment.

    python3 bench/first_run.py                       # 3 runs from fresh clones of this checkout's HEAD
    python3 bench/first_run.py --runs 5 --no-uv      # the pip fallback: every `uv` taken off PATH
    python3 bench/first_run.py --uv /path/to/dir     # with the `uv` found in that directory (put first on PATH)
    python3 bench/first_run.py --rev e7eb7f6         # another commit (before this harness: same measurement)

Each run: `git clone` of HEAD into a temporary directory (committed state only), then `make run` there (its own
session, free ports, data in the clone's `.data`, the embedded PostgreSQL and Redis: no server URL), every line it
prints stamped with the seconds since `make run` started. It notes when the environment is installed
(`.venv/.installed` appears), when `/health/ready` first answers 200, when the banner ("Ready. Ctrl-C to stop.")
is printed, and when the first transfer between two new accounts answers `completed` (the banner's "Try it" key);
then SIGTERM to the session, and the clone is removed. Package caches are left as they are: run it once to warm
them, and read the later runs. Only the standard library: it runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = "pk_firstrun_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(method: str, url: str, body: dict[str, Any] | None = None, key: str | None = None,
         extra: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **(extra or {})}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def cpu_seconds(make_pid: int, marker: str) -> tuple[float, float]:
    """(install, start-up) CPU seconds so far: make's reaped children (the install's shell, with uv or pip in it),
    and every live process whose command line holds `marker` (the clone's path: `payments dev`, its children, the
    embedded PostgreSQL and Redis), each with the children it has reaped (initdb, exited backends)."""
    clk = os.sysconf("SC_CLK_TCK")
    install = startup = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        if int(entry) == make_pid:
            install += reaped
        elif marker in cmdline:
            startup += own + reaped
    return install / clk, startup / clk


def path_without_uv(path: str) -> str:
    """PATH without the directories that hold a `uv`."""
    return os.pathsep.join(d for d in path.split(os.pathsep) if d and not (Path(d) / "uv").exists())


def one_run(args: argparse.Namespace, index: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="payments-first-run-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    if args.rev:
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", args.rev], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENTS_", "VIRTUAL_ENV"))}
    env.update(PAYMENTS_SERVER_PORT=str(port), PAYMENTS_MOCK_PORT=str(free_port()),
               PAYMENTS_WORKER_METRICS_PORT=str(free_port()), PAYMENTS_DEV_API_KEY=KEY,
               PAYMENTS_DATA_DIR=str(clone / ".data"))
    if args.no_uv:
        env["PATH"] = path_without_uv(env["PATH"])
    if args.uv:
        env["PATH"] = os.pathsep.join((str(Path(args.uv).resolve()), env["PATH"]))
    base = f"http://127.0.0.1:{port}"
    log: list[tuple[float, str]] = []
    marks: dict[str, float] = {}
    started = time.monotonic()
    make = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def read() -> None:
        assert make.stdout is not None
        for raw in make.stdout:
            line = raw.decode(errors="replace").rstrip()
            now = time.monotonic() - started
            log.append((now, line))
            if "Ready. Ctrl-C to stop." in line:
                marks.setdefault("banner", now)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = started + args.timeout
        while time.monotonic() < deadline and "ready" not in marks:
            if make.poll() is not None:
                raise RuntimeError("make run exited early")
            if "installed" not in marks and (clone / ".venv" / ".installed").exists():
                marks["installed"] = time.monotonic() - started
            try:
                if call("GET", f"{base}/health/ready")[0] == 200:
                    marks["ready"] = time.monotonic() - started
                    marks["install_cpu"], marks["startup_cpu"] = cpu_seconds(make.pid, str(clone))
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.05)
        if "ready" not in marks:
            raise RuntimeError(f"not ready in {args.timeout:.0f} s")
        marks.setdefault("installed", marks["ready"])
        while "banner" not in marks and time.monotonic() < deadline:  # the banner is a poll (0.2 s) behind
            time.sleep(0.05)
        a = call("POST", f"{base}/api/v1/accounts", {"user_id": "a", "currency": "USD", "initial_balance": "10.00"},
                 KEY)[1]
        b = call("POST", f"{base}/api/v1/accounts", {"user_id": "b", "currency": "USD"}, KEY)[1]
        status, transfer = call("POST", f"{base}/api/v1/transfers",
                                {"source_account_id": a["id"], "destination_account_id": b["id"], "amount": "1.00",
                                 "currency": "USD"}, KEY, {"Idempotency-Key": "first-run"})
        if transfer.get("status") != "completed":
            raise RuntimeError(f"the first transfer answered {status}: {transfer}")
        marks["first_payment"] = time.monotonic() - started
    except RuntimeError as error:
        print("\n".join(f"{t:7.2f}  {line}" for t, line in log[-40:]), file=sys.stderr)
        raise SystemExit(f"run {index}: {error}") from None
    finally:
        with_signal(make.pid, signal.SIGTERM)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            with_signal(make.pid, signal.SIGKILL)
            make.wait()
        reader.join(10)
        subprocess.run(["pkill", "-KILL", "-f", str(clone / ".data")], check=False)  # embedded servers, if any left
        shutil.rmtree(work, ignore_errors=True)
    if args.verbose:
        print("\n".join(f"  {t:7.2f}  {line[:160]}" for t, line in log if line.strip()))
    marks["startup"] = marks["ready"] - marks["installed"]
    return marks


def with_signal(session: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-uv", action="store_true", help="take every directory holding a `uv` off PATH")
    parser.add_argument("--uv", help="a directory holding the `uv` to use, put first on PATH")
    parser.add_argument("--rev", help="check this commit out in each clone (default: HEAD)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take to be ready")
    parser.add_argument("--verbose", action="store_true", help="print make run's stamped output of each run")
    args = parser.parse_args(argv)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev or "HEAD"], capture_output=True,
                          text=True,
                          check=True).stdout.strip()
    uv = shutil.which("uv", path=path_without_uv(os.environ["PATH"]) if args.no_uv else
                      os.pathsep.join(filter(None, (args.uv, os.environ["PATH"]))))
    print(f"fresh clones of {head}; uv: {uv or 'none on PATH (pip)'}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    columns = ("installed", "startup", "ready", "banner", "first_payment", "install_cpu", "startup_cpu")
    print("run  " + "  ".join(f"{c:>13}" for c in columns), flush=True)
    rows = []
    for index in range(1, args.runs + 1):
        marks = one_run(args, index)
        rows.append(marks)
        print(f"{index:<3}  " + "  ".join(f"{marks.get(c, float('nan')):12.1f}s" for c in columns), flush=True)
    if len(rows) > 1:
        print("med  " + "  ".join(f"{statistics.median(r.get(c, float('nan')) for r in rows):12.1f}s"
                                  for c in columns))
    print("installed: .venv/.installed appears; startup: from then to the first 200 of /health/ready; banner: "
          "'Ready. Ctrl-C to stop.' printed; first_payment: the first transfer answered completed (seconds since "
          "`make run` started); install_cpu, startup_cpu: CPU seconds (user + system) of the install and of the "
          "processes of the stack until ready: they depend far less than the times on what else the machine runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
