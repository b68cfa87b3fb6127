"""The `payments` command explains itself (API.md §8: `--version`; every subcommand has `--help`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from payments.cli import parser
from tests.conftest import ROOT


def commands(command: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs something (not a group of commands), with its words."""
    groups = [action for action in command._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        yield path, command
    for group in groups:
        for name, child in group.choices.items():
            yield from commands(child, (*path, name))


def test_every_command_has_a_description_and_examples_of_itself(capsys: pytest.CaptureFixture[str]) -> None:
    found = dict(commands(parser()))
    assert {("keys", "create"), ("keys", "list"), ("keys", "revoke"), ("serve",), ("events", "tail")} <= set(found)
    assert len(found) == 16
    for path, command in found.items():
        words = " ".join(path)
        assert command.description, words
        assert (command.epilog or "").startswith("examples:") and f"payments {words}" in command.epilog, words
        with pytest.raises(SystemExit) as done:
            parser().parse_args([*path, "--help"])
        assert done.value.code == 0
        shown = capsys.readouterr().out
        assert command.description.split(".")[0][:40] in " ".join(shown.split()) and "examples:" in shown, words


def test_version() -> None:
    shown = subprocess.run([sys.executable, "-m", "payments", "--version"], cwd=ROOT, text=True, capture_output=True,
                           timeout=60, check=True).stdout
    name, version = shown.split()
    assert name == "payments" and version[0].isdigit(), shown
