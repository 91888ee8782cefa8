"""The sandbox EHR's schedule page as its interface engine: "Send scheduling message",
"Reschedule" and "Cancel" push signed SIU S12 / S13 / S15 to the app's intake (with the
certificate `make run` uploads, dev/seed.py `seed_sms`), the page shows what was answered, and
the texts follow: the confirmation on the patient's phone after the next timer run, the moved
one after a reschedule, the cancellation, and no reminder after it."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from dev.sandbox.acs.numbers import SEED_NUMBER
from dev.sandbox.ehr.data import PATIENTS
from dev.sandbox.ehr.scheduling import key_pair
from dev.seed import sandbox_endpoints, seed, seed_sms
from lib.bootstrap import build
from lib.settings import load_settings
from lib.visits.keys import visit_key

VENDOR, CLINICIAN, SLOT = "epic", "okafor", "okafor-1000"  # not a journey test's appointment


@pytest.fixture(scope="module")
def engine(app):
    """The sandbox endpoints under the ids the EHR's buttons use, with texts on (make run's)."""
    admin = app.session("admin")
    wanted = {e["fhir_base_url"]: e["id"] for e in sandbox_endpoints(app.sandbox.origins)}
    for item in admin.get(app.api("config/endpoints")).json()["items"]:
        if wanted.get(item["fhir_base_url"], item["id"]) != item["id"]:  # another test's
            etag = admin.get(app.api(f"config/endpoints/{item['id']}")).headers["ETag"]
            admin.delete(app.api(f"config/endpoints/{item['id']}"), headers={"If-Match": etag})
    ca = str(app.sandbox.ca_file)
    lines = seed(app.url, app.sandbox.origins, ca, app.token)
    assert all(line.endswith(": active") for line in lines), lines
    _, certificate = key_pair(app.sandbox.state.state_dir)
    ids = sorted(wanted.values())
    lines = seed_sms(app.url, ca, app.token, ids, number=SEED_NUMBER, certificate=certificate)
    assert not [line for line in lines if not line.endswith(("linked", "on", "uploaded"))], lines
    return getattr(app.sandbox, VENDOR)


def press(app, ehr, action: str, appointment: str, clinician: str = CLINICIAN) -> str:
    """A button on the schedule page (its form, posted as the browser does); what it says."""
    s = app.session()
    s.verify = str(app.sandbox.ca_file)
    answer = s.post(
        f"{ehr.schedule_url}/message",
        data={"clinician": clinician, "appointment": appointment, "action": action},
        timeout=60,
    )
    assert answer.status_code == 200 and "data-testid='siu-sent'" in answer.text, answer.text
    assert f"siu-{action}-{appointment}" in answer.text  # back on the schedule, buttons and all
    return parse_qs(urlsplit(answer.url).query)["sent"][0]


def ledger(app, appointment: str) -> dict[str, object]:
    services = build(load_settings(app.env))
    endpoint = services.endpoints.snapshot().find("epic-sandbox-test")
    key = visit_key(services.privacy, endpoint, "Appointment", appointment)
    return {r.text_id: (r.state, r.reason) for r in services.texting.ledger.for_visit(key)}


def texts_after_a_timer_run(app, phone: str, count: int, appointment: str) -> list[str]:
    """The reminders timer's run, in-process (the host's runs once a minute as well)."""
    texting = build(load_settings(app.env)).texting
    deadline = time.monotonic() + 60
    while len(sent := app.sandbox.acs.sent_to(phone)) < count:
        assert time.monotonic() < deadline, ([t.message for t in sent], ledger(app, appointment))
        texting.run()
        time.sleep(0.5)
    return [t.message for t in sent]


def test_book_reschedule_and_cancel_from_the_schedule_page(app, engine, sandbox_trust):
    slot = engine.chart.slot(SLOT)
    appointment = engine.chart.id_of(slot)
    phone = next(p.phone for p in PATIENTS if p.key == slot.patient)
    before = len(app.sandbox.acs.sent_to(phone))

    assert press(app, engine, "book", appointment) == "S12: 200 AA applied"
    booked = texts_after_a_timer_run(app, phone, before + 1, appointment)[-1]
    assert booked.startswith("Sandbox Health: video visit") and "/api/j/" in booked

    assert press(app, engine, "reschedule", appointment) == "S13: 200 AA applied"
    moved = texts_after_a_timer_run(app, phone, before + 2, appointment)[-1]
    assert "moved to" in moved
    page = app.session().get(f"{engine.schedule_url}?clinician={CLINICIAN}").text
    assert "rescheduled" in page

    assert press(app, engine, "cancel", appointment) == "S15: 200 AA applied"
    cancelled = texts_after_a_timer_run(app, phone, before + 3, appointment)[-1]
    assert "is cancelled" in cancelled
    # The visit the launch will find is cancelled: its pending reminders are skipped when due.
    services = build(load_settings(app.env))
    endpoint = services.endpoints.snapshot().find("epic-sandbox-test")
    key = visit_key(services.privacy, endpoint, "Appointment", appointment)
    assert services.visits.get(key).cancelled_at is not None
    rows = {r.text_id: r.state for r in services.texting.ledger.for_visit(key)}
    assert rows["booked-v1"] in ("sent", "delivered") and rows["moved-v2"] in ("sent", "delivered")
    assert {k for k in rows if k.startswith("reminder-")} and phone not in str(rows)


def test_the_integration_records_say_where_and_how_to_send_scheduling_messages(app, engine):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from tests.e2e.portal_client import Portal

    _, pem = key_pair(app.sandbox.state.state_dir)
    thumbprint = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()
    eid = "epic-sandbox-test"
    records = app.session("reader").get(app.api(f"config/endpoints/{eid}/integration-records"))
    assert records.status_code == 200, records.text
    found = records.json()
    assert found["scheduling_intake_url"] == app.api(f"scheduling/{eid}")
    assert "detached JWS" in found["scheduling_signature"] and "SIU" in found["scheduling_formats"]
    assert found["scheduling_certificate_sha256"].lower().replace(":", "") == thumbprint
    assert found["sms_number"] == SEED_NUMBER and list(found)[-1] == "notes"
    text = app.session("reader").get(
        app.api(f"config/endpoints/{eid}/integration-records?format=text")
    )
    assert app.api(f"scheduling/{eid}") in text.text
    page = Portal(app, "admin").get(f"endpoints/{eid}/records")
    assert page.status_code == 200
    assert "Scheduling intake URL" in page.text and app.api(f"scheduling/{eid}") in page.text
    assert found["scheduling_certificate_sha256"] in page.text
