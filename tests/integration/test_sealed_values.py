"""Sealed values on Azurite: nothing in clear, expiry honoured before and by the cleanup."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from lib.sealing import SealBroken, Sealer
from lib.storage import TableStore
from lib.visits.sealed import SEALED, SealedValues

PHONE = "+15551234567"
APPOINTMENT = "Appointment/eAB3mDIBx-Zqy9Pq3"


@pytest.fixture
def service(storage_connection_string) -> TableServiceClient:
    return TableServiceClient.from_connection_string(storage_connection_string)


@pytest.fixture
def prefix() -> str:
    return "z" + uuid.uuid4().hex[:10]


@pytest.fixture
def sealer() -> Sealer:
    return Sealer([secrets.token_bytes(32)])


@pytest.fixture
def sealed(service, prefix, sealer) -> SealedValues:
    return SealedValues(TableStore(service, prefix), sealer)


def visit() -> str:
    return uuid.uuid4().hex  # visit keys are keyed hashes: 32 hex characters


def later(**kw) -> datetime:
    return datetime.now(UTC) + timedelta(**kw)


def raw_rows(service, prefix) -> list[dict]:
    return [dict(e) for e in service.get_table_client(f"{prefix}{SEALED}").list_entities()]


def test_put_and_open(sealed):
    v = visit()
    sealed.put(v, "phone", PHONE, later(days=2))
    sealed.put(v, "appointment-id", APPOINTMENT, later(days=30))
    assert sealed.open(v, "phone") == PHONE
    assert sealed.open(v, "appointment-id") == APPOINTMENT
    assert sealed.open(v, "conference-id") is None
    assert sealed.open(visit(), "phone") is None
    sealed.put(v, "phone", "+15550000000", later(days=2))  # a second put replaces
    assert sealed.open(v, "phone") == "+15550000000"


def test_the_stored_row_holds_no_plaintext(sealed, service, prefix):
    v = visit()
    sealed.put(v, "phone", PHONE, later(days=2))
    sealed.put(v, "appointment-id", APPOINTMENT, later(days=2))
    rows = raw_rows(service, prefix)
    assert {(r["PartitionKey"], r["RowKey"]) for r in rows} == {
        (v, "phone"),
        (v, "appointment-id"),
    }
    for row in rows:
        assert set(row) == {"PartitionKey", "RowKey", "sealed", "purge_after"}
        assert row["sealed"].startswith("s1.")
        text = repr(row)
        for secret in (PHONE, PHONE[2:], "5551234567", APPOINTMENT, "eAB3mDIBx"):
            assert secret not in text


def test_a_row_copied_to_another_visit_or_purpose_does_not_open(sealed, service, prefix):
    a, b = visit(), visit()
    sealed.put(a, "phone", PHONE, later(days=2))
    sealed.put(b, "phone", "+15557654321", later(days=2))
    table = service.get_table_client(f"{prefix}{SEALED}")
    stolen = dict(table.get_entity(a, "phone"))
    table.upsert_entity({**stolen, "PartitionKey": b})  # a's value into b's row
    table.upsert_entity({**stolen, "RowKey": "appointment-id"})  # into a's other purpose
    with pytest.raises(SealBroken):
        sealed.open(b, "phone")
    with pytest.raises(SealBroken):
        sealed.open(a, "appointment-id")
    assert sealed.open(a, "phone") == PHONE


def test_a_value_past_purge_after_does_not_open_before_the_cleanup(sealed):
    v = visit()
    start = datetime.now(UTC)
    sealed.put(v, "phone", PHONE, start + timedelta(hours=1))
    assert sealed.open(v, "phone", now=start + timedelta(minutes=59)) == PHONE
    assert sealed.open(v, "phone", now=start + timedelta(hours=1)) is None
    assert sealed.open(v, "phone", now=start + timedelta(days=3)) is None
    assert sealed.open(v, "phone") == PHONE  # still stored; only the cleanup deletes it


def test_put_refuses_a_purge_after_already_past_or_naive(sealed):
    v = visit()
    with pytest.raises(ValueError, match="past"):
        sealed.put(v, "phone", PHONE, datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone"):
        sealed.put(v, "phone", PHONE, datetime.now() + timedelta(days=1))
    assert sealed.open(v, "phone") is None


def test_forget_one_or_all(sealed):
    v, other = visit(), visit()
    for purpose in ("phone", "appointment-id", "conference-id"):
        sealed.put(v, purpose, f"value-{purpose}", later(days=1))
    sealed.put(other, "phone", PHONE, later(days=1))
    sealed.forget(v, "phone")
    assert sealed.open(v, "phone") is None and sealed.open(v, "conference-id")
    sealed.forget(v, "phone")  # idempotent
    sealed.forget(v)
    assert sealed.open(v, "appointment-id") is None and sealed.open(v, "conference-id") is None
    sealed.forget(v)
    assert sealed.open(other, "phone") == PHONE  # another visit is untouched


def test_purge_expired_deletes_exactly_the_expired_rows_bounded_per_run(sealed, service, prefix):
    now = datetime.now(UTC)
    written = now - timedelta(days=10)
    expired = {(visit(), "phone") for _ in range(5)}
    for v, purpose in expired:
        sealed.put(v, purpose, PHONE, written + timedelta(days=1), now=written)
    live_visit = visit()
    sealed.put(live_visit, "phone", PHONE, now + timedelta(days=1))
    sealed.put(live_visit, "appointment-id", APPOINTMENT, now + timedelta(minutes=5))
    # the boundary: a value whose purge-after is exactly now is expired (open() says so too)
    edge = visit()
    sealed.put(edge, "phone", PHONE, now, now=written)
    expired.add((edge, "phone"))
    assert sealed.open(edge, "phone", now=now) is None

    def keys() -> set[tuple[str, str]]:
        return {(r["PartitionKey"], r["RowKey"]) for r in raw_rows(service, prefix)}

    assert len(keys()) == 8
    assert sealed.purge_expired(now=now, limit=4) == 4  # bounded
    assert len(keys() & expired) == 2
    assert sealed.purge_expired(now=now, limit=4) == 2  # the rest on the next run
    assert sealed.purge_expired(now=now, limit=4) == 0  # idempotent
    assert keys() == {(live_visit, "phone"), (live_visit, "appointment-id")}
    assert sealed.open(live_visit, "phone", now=now) == PHONE
    # ten minutes later the short-lived one goes, the other stays
    assert sealed.purge_expired(now=now + timedelta(minutes=10)) == 1
    assert keys() == {(live_visit, "phone")}


def test_purge_keeps_a_value_put_again_after_it_was_read(sealed, service, prefix, monkeypatch):
    """A row re-put with a new purge-after between the cleanup's query and its delete stays."""
    v = visit()
    past = datetime.now(UTC) - timedelta(days=2)
    sealed.put(v, "phone", PHONE, past + timedelta(days=1), now=past)
    table = sealed._table
    real_query = table.query

    def query_then_renew(*args, **kwargs):
        rows = list(real_query(*args, **kwargs))
        sealed.put(v, "phone", "+15550000000", later(days=1))
        return iter(rows)

    monkeypatch.setattr(table, "query", query_then_renew)
    assert sealed.purge_expired() == 0
    monkeypatch.undo()
    assert sealed.open(v, "phone") == "+15550000000"
    assert sealed.purge_expired() == 0


def test_purge_limit_must_be_positive(sealed):
    with pytest.raises(ValueError):
        sealed.purge_expired(limit=0)


def test_a_value_sealed_under_a_removed_key_is_broken_not_absent(service, prefix):
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    v = visit()
    SealedValues(TableStore(service, prefix), Sealer([old])).put(v, "phone", PHONE, later(days=1))
    rotated = SealedValues(TableStore(service, prefix), Sealer([new, old]))
    assert rotated.open(v, "phone") == PHONE
    retired = SealedValues(TableStore(service, prefix), Sealer([new]))
    with pytest.raises(SealBroken):
        retired.open(v, "phone")


def test_a_write_back_value_is_kept_past_the_visit_and_no_longer():
    from lib.visits.sealed import WRITEBACK_WINDOW, purge_after_visit

    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    end = now + timedelta(hours=1)
    assert purge_after_visit(end, now) == end + WRITEBACK_WINDOW
    assert purge_after_visit(None, now) == now + WRITEBACK_WINDOW  # end not known yet
    assert purge_after_visit(now - timedelta(days=3), now) == now + WRITEBACK_WINDOW  # ran over
