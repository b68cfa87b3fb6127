"""Every problem type of the API (API.md §1): its status, its title and the page `GET /problems/<slug>` serves.

The one table of slugs: `problems.STATUS` and `problems.TITLES` are read off it, so no problem body can name a
`type` that has no page. The texts are data, in `problem_types.toml` beside this module.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files

import attrs


@attrs.frozen(kw_only=True)
class ProblemType:
    """One `/problems/<slug>`: the status and title of every body of its type, when it is answered, what to do."""

    status: int
    title: str
    description: str
    what_to_do: str


def _load() -> dict[str, ProblemType]:
    table = tomllib.loads(files("app.http").joinpath("problem_types.toml").read_text(encoding="utf-8"))
    retry: str = table["retry"]
    return {slug: ProblemType(status=entry["status"], title=entry["title"], description=entry["description"],
                              what_to_do=entry["what_to_do"].replace("{retry}", retry))
            for slug, entry in table["types"].items()}


PROBLEM_TYPES: dict[str, ProblemType] = _load()
