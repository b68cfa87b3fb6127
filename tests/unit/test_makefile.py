"""`make run`'s first install: with uv when it is installed (on PATH, or as `python -m uv`), else with pip, whose
own output shows (no --quiet) after a line saying what is happening. Run through the Makefile itself with a
stand-in Python (and a stand-in uv) that record what make asks of them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Creates the virtual environment as a copy of itself; has no uv module unless $PYTHON_HAS_UV is set; otherwise
#: appends its arguments to $CALLS (and `-m uv venv ... DIR` creates DIR as `-m venv DIR` does).
STAND_IN = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "uv" ] && [ -z "$PYTHON_HAS_UV" ]; then echo "No module named uv" >&2; exit 1; fi
echo "$*" >> "$CALLS"
if [ "$2" = "uv" ] && [ "$3" = "venv" ]; then
    for last; do :; done; mkdir -p "$last/bin" && cp "$0" "$last/bin/python"
fi
exit 0
"""
#: A stand-in uv: `uv venv ... DIR` creates DIR/bin/python (the stand-in Python); every call goes to $CALLS.
STAND_IN_UV = """#!/bin/sh
echo "uv $*" >> "$CALLS"
if [ "$1" = "venv" ]; then for last; do :; done; mkdir -p "$last/bin" && cp "$STAND_IN_PYTHON" "$last/bin/python"; fi
exit 0
"""


def stand_ins(tmp_path: Path) -> tuple[Path, Path, Path]:
    python, calls, venv = tmp_path / "python", tmp_path / "calls", tmp_path / "venv"
    python.write_text(STAND_IN)
    python.chmod(0o755)
    return python, calls, venv


def make_install(python: Path, calls: Path, venv: Path, path: str = "/usr/bin:/bin", **env: str) -> str:
    done = subprocess.run(["make", "-s", "-C", str(ROOT), f"PYTHON={python}", f"VENV={venv}", f"{venv}/.installed"],
                          env={"PATH": path, "CALLS": str(calls), "STAND_IN_PYTHON": str(python), **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_without_uv_the_first_install_says_so_and_lets_pip_show_its_progress(tmp_path: Path) -> None:
    python, calls, venv = stand_ins(tmp_path)
    assert shutil.which("uv", path="/usr/bin:/bin") is None  # no uv on the PATH make gets, nor `python -m uv`

    out = make_install(python, calls, venv)
    assert "installing dependencies into" in out and "with pip (first run, about a minute" in out
    lines = calls.read_text().splitlines()
    (install,) = [line for line in lines if "-e .[dev,embedded]" in line]
    assert install.startswith("-m pip install ") and "--quiet" not in install.split() and "-q" not in install.split()
    assert not [line for line in lines if line.startswith("uv ")]
    upgrade = next(i for i, line in enumerate(lines) if line.startswith("-m pip install") and "--upgrade pip" in line)
    assert upgrade < lines.index(install)  # pip upgraded first: the newer pip installs faster (docs/benchmarks.md)
    (venv / ".installed").unlink()  # setup.cfg changed, say: the environment is there, only updated
    again = make_install(python, calls, venv)
    assert "updating" in again and "first run" not in again


@pytest.mark.parametrize("how", ["on PATH", "python -m uv"])
def test_with_uv_it_builds_the_environment_and_pip_is_not_used(tmp_path: Path, how: str) -> None:
    python, calls, venv = stand_ins(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uv = bin_dir / "uv"
    uv.write_text(STAND_IN_UV)
    uv.chmod(0o755)
    if how == "on PATH":
        out = make_install(python, calls, venv, f"{bin_dir}:/usr/bin:/bin")
        command = "uv"
    else:  # the stand-in Python "has" the module: every `python -m uv ...` it records, the venv it creates too
        out = make_install(python, calls, venv, PYTHON_HAS_UV="1")
        command = "-m uv"
    assert "with uv (first run, seconds)" in out
    lines = [line for line in calls.read_text().splitlines() if " venv " in f" {line} " or "[dev,embedded]" in line]
    assert lines[0].startswith(f"{command} venv --seed ") and lines[0].endswith(str(venv))  # pip stays in the venv
    assert lines[-1].startswith(f"{command} pip install --python {venv}/bin/python -e .[dev,embedded]")
    assert not [line for line in calls.read_text().splitlines() if line.startswith("-m pip")]
    (venv / ".installed").unlink()
    calls.unlink()
    forced = make_install(python, calls, venv, f"{bin_dir}:/usr/bin:/bin", UV="")  # `make UV= run`: pip
    assert "updating" in forced and "-m pip install" in calls.read_text() and "uv " not in calls.read_text()
