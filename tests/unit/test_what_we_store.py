"""docs/privacy.md's "What we store" covers everything the code stores: each table the code opens
has its models, each entity model of lib/ is in a table and described (why, how long), each queue
is described; and nothing described is gone from the code. (tests/unit/test_docs.py checks the
generated blocks are current.)"""

from __future__ import annotations

from datetime import timedelta

from dev import what_we_store as stored
from dev.storage_names import code_queues, code_tables


def test_every_table_has_its_row_kinds():
    tables = stored.tables()
    assert set(tables) == code_tables()
    assert all(tables.values()), {t for t, models in tables.items() if not models}


def test_every_entity_model_is_in_a_table_and_described():
    placed = {m.__name__ for models in stored.tables().values() for m in models}
    models = set(stored.entity_models())
    assert models == placed, f"in no table (add to PLACED): {sorted(models - placed)}"
    kept = stored.kept()
    assert models <= kept.keys(), (
        f"describe in dev/what_we_store.py: {sorted(models - kept.keys())}"
    )
    assert kept.keys() <= models, f"no longer in the code: {sorted(kept.keys() - models)}"
    assert set(stored.PLACED) <= models


def test_every_queue_is_described():
    queues = code_queues()
    assert queues == stored.QUEUES.keys(), (
        f"describe in QUEUES: {sorted(queues ^ stored.QUEUES.keys())}"
    )


def test_every_row_says_its_keys():
    for table, models in stored.tables().items():
        for model in models:
            assert stored._keys(model, stored.kept()[model.__name__]), (table, model.__name__)


def test_how_long_reads_from_the_cleanup_constants():
    from lib.visits.sealed import WRITEBACK_WINDOW

    assert f"{stored.span(WRITEBACK_WINDOW)} after it" in stored.kept()["SealedValue"].how_long
    spans = [stored.span(timedelta(**kw)) for kw in ({"days": 2}, {"hours": 1}, {"seconds": 90})]
    assert spans == ["2 days", "1 hour", "90 seconds"]
