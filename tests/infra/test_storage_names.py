"""The tables and queues infra/ declares are the ones the code opens, read from lib/ and functions/.

Tables: every `<store>.table(NAME, Model)` call in lib/, NAME resolved through the module-level
string constants. Queues: every `QueueSender(service, NAME)` and every `queue_trigger(queue_name=)`.
A queue infra/ declares before the code uses it is listed in AHEAD, with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.infra.bicep import INFRA, ROOT, BicepFile, literal

MAIN = BicepFile(INFRA / "main.bicep")
STORAGE = BicepFile(INFRA / "app" / "storage.bicep")

AHEAD: dict[str, str] = {}


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


def code_tables(root: Path = ROOT) -> set[str]:
    trees = _sources(root, "lib")
    constants = _constants(trees)
    return {
        _resolve(call.args[0], constants)
        for tree in trees
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "table"
        and len(call.args) == 2
    }


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


def test_the_code_opens_the_tables_we_know():
    assert {"Config", "Sessions", "Visits", "Sealed"} <= code_tables()


def test_tables_match_the_code():
    declared = set(literal(MAIN.variables["tableNames"].value))
    assert declared == code_tables()


def test_queues_match_the_code():
    declared = set(literal(MAIN.variables["queueNames"].value))
    used = code_queues()
    assert used <= declared, f"declare these queues in infra/main.bicep: {sorted(used - declared)}"
    assert declared - used <= AHEAD.keys(), f"no code uses {sorted(declared - used - AHEAD.keys())}"
    assert not AHEAD.keys() & used, f"the code uses {sorted(AHEAD.keys() & used)}: drop from AHEAD"


def test_every_queue_has_its_poison_queue():
    all_queues = STORAGE.variables["allQueues"].value.text.decode()
    assert "'${queue}-poison'" in all_queues and "queueNames" in all_queues
    loop = next(
        d for d in STORAGE.resources("Microsoft.Storage/storageAccounts/queueServices/queues")
    )
    assert loop.loop and "allQueues" in loop.node.text.decode()


def test_tables_carry_the_prefix():
    loop = next(
        d for d in STORAGE.resources("Microsoft.Storage/storageAccounts/tableServices/tables")
    )
    assert literal(loop.value)["name"].text == "'${tablePrefix}${table}'"


def test_a_new_table_or_queue_in_the_code_is_noticed(tmp_path: Path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "functions").mkdir()
    (tmp_path / "lib" / "sms.py").write_text(
        'LEDGER = "SmsLedger"\n\ndef make(store, service):\n'
        '    QueueSender(service, "sms-out")\n    return store.table(LEDGER, object)\n'
    )
    assert code_tables(tmp_path) == {"SmsLedger"}
    assert code_queues(tmp_path) == {"sms-out"}
