"""The tables and queues the code opens, read from lib/ and functions/ without importing them.

Tables: every `<store>.table(NAME, Model)` call in lib/, NAME resolved through the module-level
string constants. Queues: every `QueueSender(service, NAME)` and every `queue_trigger(queue_name=)`.
Used by tests/infra (infra/ declares exactly these) and by `make docs` (docs/privacy.md's
"What we store" has a row for each).
"""

from __future__ import annotations

import ast
from pathlib import Path

from dev.procs import ROOT


def _sources(root: Path, *folders: str) -> list[ast.Module]:
    return [
        ast.parse(path.read_text(), str(path))
        for folder in folders
        for path in sorted((root / folder).rglob("*.py"))
    ]


def _constants(trees: list[ast.Module]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        found.setdefault(target.id, set()).add(node.value.value)
    return found


def _resolve(node: ast.expr, constants: dict[str, set[str]]) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    values = constants.get(name or "", set())
    assert len(values) == 1, f"cannot tell which storage name {ast.unparse(node)} is: {values}"
    return next(iter(values))


def table_models(root: Path = ROOT) -> dict[str, set[str]]:
    """Each table the code opens, with the names of the entity models it opens it with (a model
    passed in a variable is not named here: dev/what_we_store.py places those)."""
    trees = _sources(root, "lib")
    constants = _constants(trees)
    found: dict[str, set[str]] = {}
    for tree in trees:
        for call in ast.walk(tree):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "table"
                and len(call.args) == 2
            ):
                models = found.setdefault(_resolve(call.args[0], constants), set())
                if isinstance(call.args[1], ast.Name) and call.args[1].id[:1].isupper():
                    models.add(call.args[1].id)
    return found


def code_tables(root: Path = ROOT) -> set[str]:
    return set(table_models(root))


def code_queues(root: Path = ROOT) -> set[str]:
    trees = _sources(root, "lib", "functions")
    constants = _constants(trees)
    found = set()
    for tree in trees:
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "QueueSender" and len(call.args) == 2:
                found.add(_resolve(call.args[1], constants))
            for kw in call.keywords if name == "queue_trigger" else []:
                if kw.arg == "queue_name":
                    found.add(_resolve(kw.value, constants))
    return found
