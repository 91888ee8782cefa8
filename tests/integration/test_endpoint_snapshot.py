"""Launches read endpoints from an in-process snapshot: one read per instance every few seconds,
its own changes seen at once, another instance's within the documented staleness."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient

from lib.endpoints.actor import Actor
from lib.endpoints.models import EndpointCreate, Validation
from lib.endpoints.service import EndpointService
from lib.storage import TableStore
from tests.helpers import Clock

ADMIN = Actor(oid="00000000-0000-4000-8000-0000000000a1", name="Admin")


@pytest.fixture
def store(storage_connection_string) -> TableStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    return TableStore(service, "n" + uuid.uuid4().hex[:10])


def service(store: TableStore, clock: Clock) -> EndpointService:
    valid = lambda endpoint, actor: Validation(checked_at=datetime.now(UTC), ok=True)  # noqa: E731
    return EndpointService(store, valid, staleness=5.0, clock=clock)


def body(name: str) -> EndpointCreate:
    return EndpointCreate.model_validate({
        "id": name, "fhir_base_url": f"https://{name}.example.org/r4", "vendor": "cerner",
        "environment": "test", "organization": "Contoso", "client_id": "c",
        "client_auth": {"method": "private_key_jwt", "alg": "RS384"},
        "launch": {"ehr_origins": ["https://powerchart.example.org"]},
    })  # fmt: skip


def test_a_snapshot_is_shared_and_refreshed_by_age(store):
    clock = Clock()
    here, there = service(store, clock), service(store, clock)
    here.create(body("ep-one"), ADMIN)
    first = there.snapshot()
    assert first.find("ep-one").enabled and first.by_base("https://ep-one.example.org/r4/")
    assert first.ehr_origins() == ("https://powerchart.example.org",)
    assert there.snapshot() is first  # no read while it is fresh

    here.set_enabled("ep-one", False, ADMIN)
    assert not here.snapshot().find("ep-one").enabled  # its own change: at once
    assert there.snapshot().find("ep-one").enabled  # another instance: not yet...
    clock.now += 5.0
    assert not there.snapshot().find("ep-one").enabled  # ...but within the staleness
    assert there.snapshot().find("nope") is None and there.snapshot().by_base("https://x") is None
