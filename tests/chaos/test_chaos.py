"""The fault-injection suite (docs/reliability.md). Every scenario in full is marked `chaos`, deselected by
default and run by `make chaos`; two of them, shortened, run in every `make test`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.model import FULL, SHORT, Profile
from tests.chaos.play import play
from tests.chaos.scenarios import BY_NAME
from tests.e2e.isolated import PrivatePostgres

pytestmark = pytest.mark.timeout(900)
Record = Callable[[str, object], None]  # pytest's `record_property` fixture
#: The short version: a restart of the database and a killed API, with light load (about 40 s in all).
SHORT_SCENARIOS = ["postgres_restart", "api_kill"]


async def _scenario(name: str, profile: Profile, postgres: PrivatePostgres, logs: Path,
                    record_property: Record) -> None:
    scenario = BY_NAME[name]
    for field, value in (("scenario", name), ("profile", profile.name), ("injected", scenario.describe(profile)),
                         ("asserted", scenario.asserted)):
        record_property(field, value)
    verdicts = await play(scenario, profile, postgres, logs)
    record_property("verdicts", [(v.check, v.ok, v.detail) for v in verdicts])
    failed = [f"{v.check}: {v.detail}" for v in verdicts if not v.ok]
    assert not failed, f"{name} ({profile.name}; logs in {logs}):\n" + "\n".join(failed)


@pytest.mark.chaos
@pytest.mark.parametrize("name", list(BY_NAME))
async def test_scenario(name: str, chaos_postgres: PrivatePostgres, tmp_path: Path,
                        record_property: Record) -> None:
    await _scenario(name, FULL, chaos_postgres, tmp_path, record_property)


@pytest.mark.parametrize("name", SHORT_SCENARIOS)
async def test_short_scenario(name: str, chaos_postgres: PrivatePostgres, tmp_path: Path,
                              record_property: Record) -> None:
    await _scenario(name, SHORT, chaos_postgres, tmp_path, record_property)
