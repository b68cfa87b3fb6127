"""docs/api/reference.md is what `python -m app.http.reference` renders from the OpenAPI document, and stays so."""

from __future__ import annotations

from pathlib import Path

from app.http import reference
from app.http.operations import OPERATIONS, openapi_document
from app.http.problem_types import PROBLEM_TYPES

ROOT = Path(__file__).resolve().parents[2]


def _operations() -> dict[str, dict]:
    return {op["operationId"]: op for methods in openapi_document("test")["paths"].values()
            for op in methods.values()}


def test_the_committed_reference_is_current() -> None:
    committed = (ROOT / reference.DEFAULT_PATH).read_text(encoding="utf-8")
    assert committed == reference.render(), (
        f"{reference.DEFAULT_PATH} is stale: refresh it with `.venv/bin/{reference.COMMAND}` and commit it")


def test_every_operation_is_in_the_reference() -> None:
    text = reference.render()
    for path, methods in openapi_document("test")["paths"].items():
        for method, op in methods.items():
            assert f"`{method.upper()} {path}`" in text
            assert f"### {op['summary']}\n" in text
    for slug in PROBLEM_TYPES:
        assert f"### {slug}\n" in text and f"{reference.PAGES}{slug}" in text


def test_every_operation_names_its_problem_types() -> None:
    """Each operation declares its problem types (`Operation.problems`, next to `errors`); the document lists
    them under each error status, and the reference shows what the document lists."""
    declared = {op.operation_id: op for op in OPERATIONS}
    for operation_id, op in _operations().items():
        statuses = {int(status) for status in op["responses"]}
        for slug in declared[operation_id].problems:
            assert PROBLEM_TYPES[slug].status in statuses, (operation_id, slug)
        for status, slugs in reference.problems_of(op).items():
            assert slugs, f"{operation_id} declares {status} but no problem type of it applies"
            assert all(PROBLEM_TYPES[slug].status == status for slug in slugs)


def test_the_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "api" / "reference.md"
    assert reference.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == reference.render()
