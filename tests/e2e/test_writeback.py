"""EHR write-back through the running app: visit events on its queue, its timeline listener, its
`ehr-writeback` queue function, the sandbox EHR; failures and replay through the config API.

Nothing here calls the worker directly: the host's queue triggers do the work, as in Azure.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.test_config_api import cerner_body, delete_all_with_base

WAIT = 60.0  # seconds: the host polls its queues every 2 s at most; the machine is loaded


def eventually(check, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def services(app):
    from lib.bootstrap import build
    from lib.settings import load_settings

    return build(load_settings(app.env))


@pytest.fixture
def endpoint(app):
    """A Cerner-like endpoint: launches with a client secret, write-back with a backend client."""
    delete_all_with_base(app, app.sandbox.ehr_base("cerner"))
    body = cerner_body(
        app,
        writeback={
            "enabled": True,
            "auth": {"method": "backend_services", "client_id": "evc-cerner-jwt", "alg": "ES384"},
        },
    )
    created = app.session("admin").post(app.api("config/endpoints"), json=body, timeout=60)
    assert created.status_code == 201, created.text
    assert created.json()["validation"]["ok"], created.json()["validation"]
    yield created.json()
    delete_all_with_base(app, app.sandbox.ehr_base("cerner"))


def a_visit(services, endpoint_id: str, appointment_id: str) -> str:
    from lib.visits.sealed import APPOINTMENT_ID
    from lib.visits.store import Visit

    key = "vk" + uuid.uuid4().hex
    services.visits.claim(
        Visit(
            partition_key=key,
            row_key="visit",
            endpoint_id=endpoint_id,
            organizer_oid=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            created_by_role="provider",
        )
    )
    purge = datetime.now(UTC) + timedelta(hours=1)
    services.sealed.put(key, APPOINTMENT_ID, f"Appointment/{appointment_id}", purge)
    return key


def test_the_ehr_follows_the_visit_and_a_failure_is_replayed(app, services, endpoint):
    app.sandbox.reset()  # no quirk or fault of an earlier test (the connector's settings stay)
    cerner = app.sandbox.cerner
    slot = cerner.chart.slots(clinician="okafor")[0]
    appt = cerner.chart.id_of(slot)
    key = a_visit(services, endpoint["id"], appt)
    written = cerner.writes.get

    services.events.emit(key, "arrived", "patient", "join")
    eventually(lambda: written(appt).status == "arrived", "the patient shows as arrived")

    # The EHR refuses the next write (403): dead-lettered at once, listed, replayed by an admin.
    app.sandbox.inject(family="ehr-writeback", status=403, count=1)
    services.events.emit(key, "joined", "patient", "graph")
    reader = app.session("reader")
    url = app.api("config/writeback/failures")
    listing = eventually(
        lambda: reader.get(url, params={"endpoint": endpoint["id"]}, timeout=10).json()["items"],
        "the failure is listed",
    )
    (failure,) = listing
    assert failure["code"] == "WB-EHR-REFUSED" and failure["milestone"] == "in_visit"
    assert appt not in str(failure)
    replay = f"{url}/{failure['id']}/replay"
    assert reader.post(replay, timeout=10).status_code == 403  # replay needs Connector.Admin
    replayed = app.session("admin").post(replay, timeout=10)
    assert replayed.status_code == 202 and replayed.json()["replayed_at"]
    eventually(lambda: written(appt).status == "checked-in", "the replay is written")

    services.events.emit(key, "left", "patient", "graph")
    eventually(lambda: written(appt).status == "fulfilled", "the patient shows as left")
    assert [h["value"] for h in written(appt).history] == ["arrived", "checked-in", "fulfilled"]

    audit = reader.get(app.api("config/audit"), params={"action": "writeback.replay"}, timeout=10)
    assert any(e["target"] == f"writeback-failure:{failure['id']}" for e in audit.json()["items"])
    patient = cerner.chart.patient(slot.patient)
    log = app.host.log()
    assert "ehr_writeback" in log and appt not in log and patient.name not in log


def test_failure_routes_refuse_what_they_cannot_read(app):
    reader = app.session("reader")
    url = app.api("config/writeback/failures")
    bad = reader.get(url, params={"continuation": "not-an-id"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "CFG-BAD-QUERY"
    missing = app.session("admin").post(f"{url}/poison~{'0' * 13}-{'0' * 32}/replay", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "WB-FAILURE-NOT-FOUND"
    assert app.session().get(url, timeout=10).status_code == 401
