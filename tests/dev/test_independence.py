"""The sandbox is an independent oracle (it never imports the connector) and dev/host stays a
generic host (it knows function_app only as a file it loads)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dev.procs import ROOT

PRODUCT = ("lib", "functions", "function_app")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("folder", ["dev/sandbox", "dev/host"])
def test_never_imports_the_product(folder: str) -> None:
    modules = imported_modules(ROOT / folder)
    assert modules, folder
    offending = {
        path: sorted(n for n in names if n.split(".")[0] in PRODUCT)
        for path, names in modules.items()
        if any(n.split(".")[0] in PRODUCT for n in names)
    }
    assert offending == {}
