"""A production install, as a newcomer makes it: build the wheel, install it (not editable, without the `embedded`
extra) into a fresh virtual environment, and run it from a directory outside the checkout: `payments migrate`
applies every migration, `payments ledger check` passes, `payments serve` answers /health/ready and its /docs
assets, and SIGTERM stops it with exit 0. Also: the wheel holds every file of the runtime packages that git tracks,
its build prints no setuptools warning, `payments dev` without the extra says in one line what to install, and
`payments migrate` on an installation that lost its migrations fails in one line.

The wheel's dependencies come through pip's configured index once, into a wheelhouse under `.cache/` (git ignores
it) keyed by setup.cfg's requirements; each run then installs from it with `--no-index`, which takes seconds
instead of half a minute."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import free_port, stack_env

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("core", "adapters", "app", "workers", "payments")
WHEELHOUSES = ROOT / ".cache" / "wheelhouse"
PIP = ("-m", "pip", "--disable-pip-version-check")
#: What setuptools says when a configuration leaves files out or relies on deprecated behaviour.
SETUPTOOLS_WARNING = re.compile(r"would be ignored|as data is deprecated|Warning\b|warning:", re.IGNORECASE)
#: distutils' notes that PYTHONDONTWRITEBYTECODE is set: not about the package.
HARMLESS = ("byte-compiling is disabled",)


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def tracked_runtime_files() -> list[str]:
    """The files of the runtime packages a clone would have (tracked, or new and not ignored)."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *RUNTIME_PACKAGES,
                 cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    return sorted({name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()})


def build_wheel(into: Path) -> tuple[Path, str]:
    """Build from a copy of what git would commit (the build's `build/` and `*.egg-info` stay out of the checkout);
    return the wheel and the build's verbose output."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    source = into / "source"
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = run(sys.executable, *PIP, "wheel", "-v", "--no-deps", "-w", into / "dist", source, timeout=180)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    (wheel,) = (into / "dist").glob("payments-*.whl")
    return wheel, built.stdout + built.stderr


def wheelhouse(wheel: Path) -> Path:
    """Every dependency of the wheel as wheels, downloaded through pip's configured index once per set of
    requirements (setup.cfg) and Python version."""
    key = hashlib.sha256((ROOT / "setup.cfg").read_bytes() + sys.version.encode()).hexdigest()[:16]
    house = WHEELHOUSES / key
    if not house.is_dir():
        partial = WHEELHOUSES / f"{key}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        got = run(sys.executable, *PIP, "download", "--quiet", "-d", partial, wheel, timeout=180)
        assert got.returncode == 0, got.stderr[-4000:]
        for old in partial.glob("payments-*.whl"):  # the project's own wheel is built fresh each time
            old.unlink()
        with contextlib.suppress(OSError):  # another run finished first: use its wheelhouse
            partial.rename(house)
        shutil.rmtree(partial, ignore_errors=True)
    return house


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process of the installed `payments`: nothing that points back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("PAYMENTS_")}
    env.update(extra)
    return env


def one_line_error(result: subprocess.CompletedProcess[str], command: str, *words: str) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"payments {command}: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory outside the checkout (pytest's own temporary tree), removed afterwards with the venv in it."""
    path = tmp_path_factory.mktemp("wheel")
    assert ROOT not in path.resolve().parents
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: Run by the installed interpreter: the client's answer is the server's typed Account.
WHEEL_CLIENT = """
import sys
from payments.client import Account, Client
with Client(sys.argv[1], sys.argv[2]) as client:
    account = client.accounts.create(user_id="wheel", currency="USD", initial_balance="5")
    assert isinstance(account, Account)
    print(account.status, client.accounts.get(account.id).balance)
"""


def test_the_wheel_installs_a_complete_payments(admin_database_url: str, redis_url: str, workdir: Path) -> None:
    wheel, output = build_wheel(workdir / "build")
    warnings = [line for line in output.splitlines()
                if SETUPTOOLS_WARNING.search(line) and not line.lstrip().startswith("WARNING: Location")
                and not any(note in line for note in HARMLESS)]
    assert warnings == [], "\n".join(warnings)

    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = [name for name in tracked_runtime_files() if name not in shipped]
    assert missing == [], f"the wheel lacks runtime files (declare them in setup.cfg's package_data): {missing}"
    top = {name.split("/")[0] for name in shipped if not name.split("/")[0].endswith(".dist-info")}
    assert top == set(RUNTIME_PACKAGES), top
    migrations = sorted(path.stem for path in (ROOT / "adapters" / "postgres" / "migrations").glob("*.sql"))
    assert migrations and all(f"adapters/postgres/migrations/{name}.sql" in shipped for name in migrations)

    venv = workdir / "venv"
    made = run(sys.executable, "-m", "venv", venv, cwd=workdir)
    assert made.returncode == 0, made.stderr
    python, payments = venv / "bin" / "python", venv / "bin" / "payments"
    installed = run(python, *PIP, "install", "--quiet", "--no-index", "--find-links", wheelhouse(wheel), wheel,
                    cwd=workdir, timeout=180)
    assert installed.returncode == 0, installed.stderr[-4000:]
    assert run(python, "-c", "import pgserver", cwd=workdir).returncode != 0, "the embedded extra got installed"

    env = clean_env()
    where = run(python, "-c", "import sys, core, adapters, app, workers, payments; "
                              "print('\\n'.join(sys.modules[n].__file__ for n in sys.argv[1:]))", *RUNTIME_PACKAGES,
                env=env, cwd=workdir)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).resolve().is_relative_to(venv.resolve()), f"{path} is not the installed package"
    version = run(payments, "--version", env=env, cwd=workdir)
    assert version.returncode == 0 and "not installed" not in version.stdout, version

    # without the embedded extra and without URLs, `payments dev` says what to install
    dev = run(payments, "dev", env=clean_env(PAYMENTS_DATA_DIR=str(workdir / "data")), cwd=workdir, timeout=60)
    one_line_error(dev, "dev", "payments[embedded]", "PAYMENTS_DATABASE_URL")

    with fresh_database(admin_database_url, migrate=lambda url: None) as url:
        port = free_port()
        env = clean_env(**stack_env(url, redis_url, port))
        migrated = run(payments, "migrate", env=env, cwd=workdir)
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.startswith(f"applied {len(migrations)} migration(s): "), migrated.stdout
        with psycopg.connect(url) as conn:
            applied = [row[0] for row in conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1")]
        assert applied == migrations
        again = run(payments, "migrate", env=env, cwd=workdir)
        assert again.returncode == 0 and again.stdout.strip() == "applied 0 migration(s)", again

        checked = run(payments, "ledger", "check", env=env, cwd=workdir)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        log = workdir / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen([str(payments), "serve"], env=env, cwd=workdir, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, f"serve exited early:\n{log.read_text(errors='replace')[-4000:]}"
                with contextlib.suppress(httpx.HTTPError):
                    ready = httpx.get(f"{base}/health/ready", timeout=1)
                    if ready.status_code == 200:
                        break
                assert time.monotonic() < deadline, f"not ready in 30 s:\n{log.read_text(errors='replace')[-4000:]}"
                time.sleep(0.1)
            assert ready.json()["checks"]["migrations"] == "ok"
            for asset in ("/docs", "/docs/redoc", "/docs/static/swagger-ui/swagger-ui-bundle.js",
                          "/docs/static/redoc/redoc.standalone.js", "/openapi.json"):
                assert httpx.get(base + asset, timeout=5).status_code == 200, asset
            # the Python client ships in the wheel and talks to the installed server
            made_key = run(payments, "keys", "create", "--tenant", "wheel", "--scopes", "read,write", env=env,
                           cwd=workdir)
            assert made_key.returncode == 0, made_key.stderr
            client = run(python, "-c", WHEEL_CLIENT, base, made_key.stdout.strip().splitlines()[-1], env=env,
                         cwd=workdir)
            assert (client.returncode, client.stdout.strip()) == (0, "active 5.00"), client.stdout + client.stderr
            server.send_signal(signal.SIGTERM)
            assert server.wait(40) == 0, log.read_text(errors="replace")[-4000:]
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

        # an installation that lost its migrations says so, in one line, instead of applying nothing
        located = run(python, "-c", "from adapters.postgres.migrate import MIGRATIONS; print(MIGRATIONS)",
                      env=env, cwd=workdir)
        shipped_dir = Path(located.stdout.strip())
        assert shipped_dir.resolve().is_relative_to(venv.resolve()), shipped_dir
        for sql in shipped_dir.glob("*.sql"):
            sql.unlink()
        one_line_error(run(payments, "migrate", env=env, cwd=workdir), "migrate", "no migrations found")
