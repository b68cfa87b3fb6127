"""Rule 1 of ARCHITECTURE.md: `core` imports only the standard library, attrs and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
ALLOWED = set(sys.stdlib_module_names) | {"attrs", "core"}
MUST_NOT = ["sanic", "asyncpg", "redis", "dramatiq", "loguru", "prometheus_client", "opentelemetry",
            "adapters", "app", "workers", "cattrs", "yaml", "httpx", "psycopg"]


def foreign_imports(source: str, filename: str = "<source>") -> list[str]:
    """`module (line N)` for every import of something neither stdlib, attrs nor core."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            names = [node.args[0].value]  # importlib.import_module("sanic") and __import__("redis")
        found += [f"{name} (line {node.lineno})" for name in names if name.split(".")[0] not in ALLOWED]
    return found


def _dynamic_import(call: ast.Call) -> bool:
    callee = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
    literal = bool(call.args) and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    return literal and callee in {"__import__", "import_module"}


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_has_modules_to_check() -> None:
    names = {path.relative_to(CORE).as_posix() for path in core_files()}
    assert {"money.py", "ledger.py", "ports/__init__.py", "usecases/transfers.py"} <= names


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_imports_only_stdlib_attrs_and_core(path: Path) -> None:
    assert foreign_imports(path.read_text(), str(path)) == []


@pytest.mark.parametrize("module", MUST_NOT)
def test_the_check_catches_every_forbidden_form(module: str) -> None:
    source = (
        f"import {module}\n"
        f"import {module}.sub as x\n"
        f"from {module} import thing\n"
        f"from {module}.sub import thing\n"
        "def later():\n"
        f"    import {module}\n"
        "if TYPE_CHECKING:\n"
        f"    from {module} import T\n"
        f"importlib.import_module('{module}')\n"
        f"__import__('{module}.x')\n"
    )
    assert len(foreign_imports(source)) == 8


def test_the_check_allows_stdlib_attrs_core_and_relative_imports() -> None:
    source = (
        "from __future__ import annotations\nimport asyncio, decimal, typing\nfrom collections.abc import Sequence\n"
        "import attrs\nfrom attrs import frozen\nfrom core.errors import NotFound\nimport core.money\n"
        "from . import ports\nfrom .ledger import post\n"
    )
    assert foreign_imports(source) == []


def test_the_check_does_not_mistake_a_lookalike_for_core() -> None:
    assert foreign_imports("import corelib\nfrom core_extras import x\nimport attr\n") == [
        "corelib (line 1)", "core_extras (line 2)", "attr (line 3)"]
