"""The tables and queues infra/ declares are the ones the code opens, read from lib/ and functions/.

What the code opens is read by dev/storage_names.py (shared with `make docs`). A queue infra/
declares before the code uses it is listed in AHEAD, with the reason.
"""

from __future__ import annotations

from pathlib import Path

from dev.storage_names import code_queues, code_tables
from tests.infra.bicep import INFRA, BicepFile, literal

MAIN = BicepFile(INFRA / "main.bicep")
STORAGE = BicepFile(INFRA / "app" / "storage.bicep")

AHEAD: dict[str, str] = {}


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
