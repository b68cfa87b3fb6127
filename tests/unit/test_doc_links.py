"""Every relative link of README.md and docs/**/*.md names a file of the repository, and a heading of it if it
gives an anchor (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:


def prose(text: str) -> str:
    """The text without code blocks and code spans, where link syntax is only text."""
    return CODE.sub("", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def broken_links(document: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(document.read_text(encoding="utf-8"))):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        file = document if not path else (ROOT / path.lstrip("/") if path.startswith("/") else
                                          (document.parent / path)).resolve()
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            shown = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file.name
            broken.append(f"{target}: no such heading in {shown}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    assert broken_links(document) == []


def test_the_checker_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Money and currencies\n\n[ok](#money-and-currencies) [gone](missing.md) [bad](#nope)\n"
                    "`[code](not-a-link.md)`\n```\n[fenced](not-a-link.md)\n```\n[web](https://example.com/x.md)\n")
    assert broken_links(page) == ["missing.md: no such file", "#nope: no such heading in page.md"]


def test_the_readme_links_the_api_docs() -> None:
    assert "](docs/api/README.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
