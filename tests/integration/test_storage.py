"""The table repository and queue sender against a real Azurite."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime
from enum import StrEnum

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient
from pydantic import BaseModel

from lib.storage import (
    ConcurrencyConflict,
    Entity,
    QueueSender,
    StorageUnavailable,
    TableStore,
)
from lib.storage.tables import check_key


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Window(BaseModel):
    before_minutes: int
    after_minutes: int


class Thing(Entity):
    label: str
    count: int = 0
    colour: Colour = Colour.RED
    when: datetime | None = None
    tags: list[str] = []
    window: Window | None = None
    big: int = 0


@pytest.fixture
def store(storage_connection_string: str) -> TableStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    # A fresh prefix per test: no test sees another's rows.
    return TableStore(service, prefix="t" + uuid.uuid4().hex[:10])


@pytest.fixture
def things(store: TableStore):
    return store.table("Things", Thing)


def test_round_trip_keeps_types(things):
    when = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    thing = Thing(
        partition_key="p",
        row_key="r",
        label="x",
        count=3,
        colour=Colour.BLUE,
        when=when,
        tags=["a", "b"],
        window=Window(before_minutes=15, after_minutes=60),
        big=2**40,
    )
    assert things.create(thing).created
    got = things.get("p", "r")
    assert got.label == "x" and got.count == 3 and got.colour is Colour.BLUE
    assert got.when == when and got.tags == ["a", "b"] and got.window.after_minutes == 60
    assert got.big == 2**40
    assert got.etag


def test_get_missing_is_none(things):
    assert things.get("p", "nothing") is None


def test_create_existing_key_returns_the_stored_entity(things):
    first = things.create(Thing(partition_key="p", row_key="k", label="first"))
    second = things.create(Thing(partition_key="p", row_key="k", label="second"))
    assert first.created and not second.created
    assert second.entity.label == "first"
    assert things.get("p", "k").label == "first"


def test_concurrent_create_has_exactly_one_winner(things):
    results = []

    def claim(n: int) -> None:
        results.append(things.create(Thing(partition_key="p", row_key="claim", label=str(n))))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.created]
    assert len(winners) == 1
    assert {r.entity.label for r in results} == {winners[0].entity.label}


def test_stale_etag_is_a_conflict(things):
    created = things.create(Thing(partition_key="p", row_key="e", label="v1")).entity
    fresh = things.update(created.model_copy(update={"label": "v2"}))
    with pytest.raises(ConcurrencyConflict):
        things.update(created.model_copy(update={"label": "v3"}))  # still the v1 ETag
    assert things.get("p", "e").label == "v2"
    with pytest.raises(ConcurrencyConflict):
        things.delete("p", "e", etag=created.etag)
    things.delete("p", "e", etag=fresh.etag)
    assert things.get("p", "e") is None


def test_update_of_removed_entity_is_a_conflict(things):
    created = things.create(Thing(partition_key="p", row_key="gone", label="v1")).entity
    things.delete("p", "gone")
    with pytest.raises(ConcurrencyConflict):
        things.update(created)


def test_update_needs_an_etag(things):
    with pytest.raises(ValueError):
        things.update(Thing(partition_key="p", row_key="x", label="v"))


def test_delete_without_etag_is_idempotent(things):
    things.create(Thing(partition_key="p", row_key="once", label="v"))
    things.delete("p", "once")
    things.delete("p", "once")  # already gone: no error
    things.delete("p", "never-there")
    assert things.get("p", "once") is None and things.get("p", "never-there") is None


def test_upsert_many_batches_by_partition(things):
    rows = [Thing(partition_key=f"p{n % 2}", row_key=f"{n:04}", label=str(n)) for n in range(230)]
    assert things.upsert_many(rows) == 230
    assert len(list(things.partition("p0"))) == 115
    assert len(list(things.partition("p1"))) == 115
    assert things.delete_many((r.partition_key, r.row_key) for r in rows[:150]) == 150
    assert len(list(things.query())) == 80


def test_query_with_parameters_and_paging(things):
    things.upsert_many(
        Thing(partition_key="q", row_key=f"{n:03}", label="x", count=n) for n in range(25)
    )
    big = list(things.partition("q", "count ge @min", min=20))
    assert [t.count for t in big] == [20, 21, 22, 23, 24]
    seen, token = [], None
    while True:
        page = things.page("PartitionKey eq @pk", {"pk": "q"}, size=10, continuation=token)
        seen += [t.count for t in page.items]
        token = page.continuation
        if token is None:
            break
    assert seen == list(range(25))


def test_bad_continuation_token_is_a_value_error(things):
    with pytest.raises(ValueError):
        things.page(size=5, continuation="not-a-token")


@pytest.mark.parametrize("key", ["a/b", "a#b", "a?b", "a\\b", "", "x\x01"])
def test_forbidden_key_characters_are_refused(key):
    with pytest.raises(ValueError):
        check_key(key)


def test_unreachable_storage_is_typed():
    from dev.stack import settings_env
    from lib.settings import load_settings
    from lib.storage.account import storage_reachable, table_service

    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    settings = load_settings(settings_env(AzureWebJobsStorage=dead))
    assert storage_reachable(settings) is False
    store = TableStore(table_service(settings, retry_total=0, connection_timeout=1), "x")
    with pytest.raises(StorageUnavailable):
        store.table("Things", Thing).get("p", "r")


def test_queue_sender_writes_base64_the_host_can_read(storage_connection_string):
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(storage_connection_string)
    name = "q" + uuid.uuid4().hex[:12]
    sender = QueueSender(service, name)
    sender.send({"event": "provider.connected", "visit": "abc"})
    sender.send("plain text")
    raw = QueueClient.from_connection_string(storage_connection_string, name)  # no decode policy
    bodies = [m.content for m in raw.receive_messages(messages_per_page=10)]
    decoded = [base64.b64decode(b).decode() for b in bodies]
    assert json.loads(decoded[0]) == {"event": "provider.connected", "visit": "abc"}
    assert decoded[1] == "plain text"


def test_queue_sender_refuses_oversized_messages(storage_connection_string):
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(storage_connection_string)
    with pytest.raises(ValueError):
        QueueSender(service, "qbig").send("x" * 60_000)


def test_transaction_is_all_or_nothing(store):
    from lib.storage import KeyExists

    things = store.table("Things", Thing)
    a = things.create(Thing(partition_key="t", row_key="a", label="a")).entity
    store.transact(
        "Things",
        [
            ("update", a.model_copy(update={"label": "a2"})),
            ("create", Thing(partition_key="t", row_key="log1", label="x")),
        ],
    )
    assert things.get("t", "a").label == "a2" and things.get("t", "log1")
    # stale ETag on the update: the create beside it must not land either
    with pytest.raises(ConcurrencyConflict):
        store.transact(
            "Things",
            [
                ("update", a.model_copy(update={"label": "a3"})),
                ("create", Thing(partition_key="t", row_key="log2", label="y")),
            ],
        )
    assert things.get("t", "log2") is None and things.get("t", "a").label == "a2"
    with pytest.raises(KeyExists):
        store.transact("Things", [("create", Thing(partition_key="t", row_key="log1", label="z"))])


class Note(Entity):
    text: str


def test_a_partition_of_several_kinds_reads_in_one_round_trip_each_row_by_its_model(store):
    things, notes = store.table("Mixed", Thing), store.table("Mixed", Note)
    things.create(Thing(partition_key="p", row_key="thing", label="a", count=3))
    notes.create(Note(partition_key="p", row_key="note", text="hello"))
    notes.create(Note(partition_key="other", row_key="note", text="not this one"))
    rows = store.partition_rows("Mixed", "p")
    assert len(rows) == 2
    thing, note = rows.get(Thing, "thing"), rows.get(Note, "note")
    assert (thing.label, thing.count, note.text) == ("a", 3, "hello")
    assert thing.etag and rows.get(Thing, "thing") is thing  # parsed once
    assert rows.get(Note, "missing") is None
    things.update(thing.model_copy(update={"count": 4}), etag=thing.etag)  # its ETag is usable


def test_a_full_batch_of_queue_workers_keeps_its_connections(storage_connection_string, caplog):
    """24 messages at once (host.json) share one client: none of its connections is closed
    for want of room in the pool (each would cost a new TCP and TLS handshake in Azure)."""
    from dev.stack import settings_env
    from lib.settings import load_settings
    from lib.storage.account import POOL_SIZE, table_service

    assert POOL_SIZE >= 24
    settings = load_settings(settings_env(AzureWebJobsStorage=storage_connection_string))
    tables = TableStore(table_service(settings), "p" + uuid.uuid4().hex[:10]).table("Pool", Thing)
    tables.create(Thing(partition_key="warm", row_key="up", label="x"))

    def work(worker: int) -> None:
        for n in range(5):
            tables.upsert(Thing(partition_key=f"w{worker}", row_key=str(n), label="x"))

    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        workers = [threading.Thread(target=work, args=(i,)) for i in range(24)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert len(list(tables.query())) == 1 + 24 * 5
