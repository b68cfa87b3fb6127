"""`make run`'s first install shows its progress: a line saying what is happening and pip's own output (no
--quiet), run through the Makefile itself with a stand-in Python that records what make asks of it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Creates the virtual environment as a copy of itself; otherwise appends its arguments to $CALLS.
STAND_IN = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
echo "$*" >> "$CALLS"
"""


def test_the_first_install_says_so_and_lets_pip_show_its_progress(tmp_path: Path) -> None:
    python, calls, venv = tmp_path / "python", tmp_path / "calls", tmp_path / "venv"
    python.write_text(STAND_IN)
    python.chmod(0o755)

    def make() -> str:
        done = subprocess.run(["make", "-s", "-C", str(ROOT), f"PYTHON={python}", f"VENV={venv}",
                               f"{venv}/.installed"], env={"PATH": "/usr/bin:/bin", "CALLS": str(calls)},
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    out = make()
    assert "installing dependencies into" in out and "first run, about a minute" in out
    (install,) = [line for line in calls.read_text().splitlines() if "-e .[dev,embedded]" in line]
    assert install.startswith("-m pip install ") and "--quiet" not in install.split() and "-q" not in install.split()
    (venv / ".installed").unlink()  # setup.cfg changed, say: the environment is there, only updated
    again = make()
    assert "updating" in again and "first run" not in again
