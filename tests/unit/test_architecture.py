"""The house rules that imports can show: layers, no cycles, no composition root inside lib/.

Every `import` in lib/ is read from the source (also those inside functions and under
TYPE_CHECKING), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"

# Bottom to top: a room may import its own layer and the ones below, never one above.
LAYERS: list[set[str]] = [
    {"lib.settings", "lib.logs", "lib.web", "lib.privacy", "lib.sealing", "lib.telemetry"},
    {"lib.net", "lib.storage", "lib.health"},
    {"lib.smart"},
    {"lib.ehr"},
    {"lib.signin"},
    {"lib.endpoints"},
    {"lib.teams"},
    {"lib.visits"},
    {"lib.notifications"},
    {"lib.writeback"},
    {"lib.sms"},
    {"lib.reports"},
    {"lib.launch"},
    {"lib.admin"},
    {"lib.portal"},
]
COMPOSITION_ROOT = "lib.bootstrap"
FORBIDDEN = ("azure.functions", "functions", "dev", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from lib.endpoints import audit` imports the module lib.endpoints.audit
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}
GRAPH = {
    name: {i for i in imports_of(path) if i in MODULES and i != name}
    for name, path in MODULES.items()
}


def room(module: str) -> str:
    """The room a module lives in: lib.endpoints.client -> lib.endpoints; lib.logs -> lib.logs."""
    return ".".join(module.split(".")[:2])


def layer(module: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room(module) in rooms)


def test_every_room_has_a_layer():
    rooms = {room(m) for m in MODULES} - {"lib", COMPOSITION_ROOT}
    placed = set().union(*LAYERS)
    assert rooms <= placed, f"add these rooms to LAYERS: {sorted(rooms - placed)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_forbidden_import(module):
    bad = {
        i
        for i in imports_of(MODULES[module])
        if any(i == f or i.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(set(MODULES) - {COMPOSITION_ROOT, "lib"}))
def test_imports_point_down(module):
    assert COMPOSITION_ROOT not in GRAPH[module], f"{module} imports the composition root"
    up = {i for i in GRAPH[module] if i != "lib" and layer(i) > layer(module)}
    assert not up, f"{module} (layer {layer(module)}) imports a higher room: {sorted(up)}"


def test_no_import_cycles():
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(GRAPH[node]):
            if seen.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for start in sorted(GRAPH):
        if start not in seen:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_rules_can_fail():
    """The checks above read real imports: a known dependency is seen, in the right direction."""
    assert "lib.endpoints.models" in GRAPH["lib.endpoints.service"]
    assert layer("lib.launch.start") > layer("lib.endpoints.service")
    assert "lib.bootstrap" in {i for i in imports_of(ROOT / "functions" / "launch.py")}
