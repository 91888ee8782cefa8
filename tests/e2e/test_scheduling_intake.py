"""Scheduling intake over real HTTP (F13): the sandbox's interface engine signs SIU and FHIR
Appointment messages; the connector verifies the detached JWS against the uploaded certificate,
refuses missing, wrong-key, stale and replayed signatures (nothing stored), keeps the visit
under the launch's key with its times and schedule version, seals the phone (E.164), answers
with ACKs / OperationOutcomes, and lets no older message overwrite a newer one."""

from __future__ import annotations

import datetime as dt
import secrets
import time

import pytest
from azure.data.tables import TableServiceClient

from dev.sandbox.ehr import scheduling as engine
from dev.stack import SEALING_KEY, settings_env
from lib.endpoints.models import Endpoint
from lib.privacy import PrivacyKeys
from lib.sealing import Sealer
from lib.storage import TableStore
from lib.visits.keys import visit_key
from lib.visits.sealed import WRITEBACK_WINDOW, SealedValues
from lib.visits.store import VisitStore
from tests.e2e.test_sms_config_api import cerner_endpoint, consent

PHONE = "+15555550101"


@pytest.fixture(scope="module")
def setup(app, tmp_path_factory):
    admin = app.session("admin")
    consent(app, admin)
    endpoint_id = cerner_endpoint(app, admin)
    key, cert = engine.key_pair(tmp_path_factory.mktemp("engine"))
    url = app.api("config/sms/certificates/test")
    current = admin.get(url, timeout=10)
    headers = {"If-Match": current.headers["ETag"]} if current.status_code == 200 else {}
    uploaded = admin.put(url, json={"certificate": cert}, headers=headers, timeout=10)
    assert uploaded.status_code == 200, uploaded.text
    endpoint = Endpoint.model_validate(
        {
            **admin.get(app.api(f"config/endpoints/{endpoint_id}"), timeout=10).json(),
            "partition_key": f"ep-{endpoint_id}",
            "row_key": "endpoint",
        }
    )
    store = TableStore(TableServiceClient.from_connection_string(app.storage), "e2e")
    return {"endpoint": endpoint, "key": key, "store": store}


def post(app, setup, body: bytes, ctype: str = "application/hl7-v2", **sign):
    headers = {"Content-Type": ctype}
    if sign.pop("signed", True):
        headers["X-EVC-Signature"] = engine.sign(
            sign.pop("signed_body", body), sign.pop("key", setup["key"]), **sign
        )
    return app.session().post(
        app.api(f"scheduling/{setup['endpoint'].id}"), data=body, headers=headers, timeout=30
    )


def the_visit(setup, appointment: str):
    key = visit_key(
        PrivacyKeys(settings_env()["CONNECTOR_HASH_KEY"]),
        setup["endpoint"],
        "Appointment",
        appointment,
    )
    return key, VisitStore(setup["store"]).get(key)


def msa(answer) -> list[str]:
    line = next(s for s in answer.text.split("\r") if s.startswith("MSA|"))
    return line.split("|")


def soon(minutes: int = 60) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).replace(microsecond=0)


def test_a_signed_s12_is_kept_with_the_phone_sealed(app, setup):
    appointment, start = f"APPT-{secrets.token_hex(4)}", soon()
    body = engine.siu("S12", appointment, start, control="CTRL12")
    answer = post(app, setup, body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/hl7-v2")
    assert msa(answer)[1:3] == ["AA", "CTRL12"]
    key, visit = the_visit(setup, appointment)
    assert visit.start == start and visit.end == start + dt.timedelta(minutes=30)
    assert visit.schedule_version == 1 and visit.cancelled_at is None
    sealed = SealedValues(
        setup["store"],
        Sealer.from_setting(SEALING_KEY, hash_key=settings_env()["CONNECTOR_HASH_KEY"]),
    )
    assert sealed.open(key, "phone") == PHONE
    assert sealed.open(key, "appointment-id") == appointment
    # The write-back needs the id as long as after a launch; the phone goes with the texts.
    service = TableServiceClient.from_connection_string(app.storage)
    kept = service.get_table_client("e2eSealed").query_entities(f"PartitionKey eq '{key}'")
    until = {r["RowKey"]: r["purge_after"] for r in kept}
    assert until["appointment-id"] >= visit.end + WRITEBACK_WINDOW > until["phone"]
    names = {t.name for t in service.list_tables()}
    for table in ("Visits", "Sealed", "VisitEvents", "SchedulingReplay", "Config"):
        if f"e2e{table}" not in names:
            continue
        rows = service.get_table_client(f"e2e{table}").list_entities()
        text = " ".join(str(dict(r)) for r in rows)
        assert "5555550101" not in text and appointment not in text, table


@pytest.mark.parametrize("case", ["missing", "wrong key", "stale", "changed body", "replayed"])
def test_a_bad_signature_is_401_and_nothing_is_stored(app, setup, case):
    appointment = f"APPT-{secrets.token_hex(4)}"
    body = engine.siu("S12", appointment, soon())
    if case == "replayed":
        jti = secrets.token_urlsafe(12)
        first = engine.siu("S12", f"APPT-{secrets.token_hex(4)}", soon())
        assert post(app, setup, first, jti=jti).status_code == 200
        answer = post(app, setup, body, jti=jti)
    else:
        from cryptography.hazmat.primitives.asymmetric import ec

        bend = {
            "missing": {"signed": False},
            "wrong key": {"key": ec.generate_private_key(ec.SECP256R1())},
            "stale": {"iat": int(time.time()) - 600},
            "changed body": {"signed_body": body.replace(b"min", b"MIN")},
        }[case]
        answer = post(app, setup, body, **bend)
    assert answer.status_code == 401, answer.text
    code = {"missing": "MISSING", "stale": "STALE", "replayed": "REPLAYED"}.get(case, "INVALID")
    assert msa(answer)[1] == "AR" and f"SCHED-SIGNATURE-{code}" in answer.text
    assert the_visit(setup, appointment)[1] is None


def test_every_siu_event_moves_the_visit_on(app, setup):
    appointment, start = f"APPT-{secrets.token_hex(4)}", soon()
    assert post(app, setup, engine.siu("S12", appointment, start)).status_code == 200
    later = start + dt.timedelta(hours=2)
    steps = [("S13", later, 2, False), ("S14", later, 2, False), ("S15", later, 3, True)]
    for event, when, version, cancelled in steps:
        answer = post(app, setup, engine.siu(event, appointment, when))
        assert answer.status_code == 200 and msa(answer)[1] == "AA", (event, answer.text)
        _, visit = the_visit(setup, appointment)
        assert (visit.start, visit.schedule_version) == (when, version), event
        assert (visit.cancelled_at is not None) == cancelled, event
    other = f"APPT-{secrets.token_hex(4)}"
    post(app, setup, engine.siu("S12", other, start))
    assert post(app, setup, engine.siu("S17", other, start)).status_code == 200
    assert the_visit(setup, other)[1].cancelled_at is not None


def test_an_older_message_arriving_late_does_not_win(app, setup):
    appointment, start = f"APPT-{secrets.token_hex(4)}", soon()
    now = dt.datetime.now(dt.UTC)
    moved = start + dt.timedelta(hours=1)
    newer = engine.siu("S13", appointment, moved, sent=now)
    older = engine.siu("S12", appointment, start, sent=now - dt.timedelta(minutes=5))
    assert post(app, setup, newer).status_code == 200
    late = post(app, setup, older)
    assert late.status_code == 200 and msa(late)[1] == "AA" and "ignored" in late.text
    assert the_visit(setup, appointment)[1].start == moved


def test_fhir_appointments_are_taken_and_answered_with_operation_outcomes(app, setup):
    appointment, start = f"fhir-{secrets.token_hex(4)}", soon(90)
    booked = engine.fhir_appointment(appointment, start)
    answer = post(app, setup, booked, "application/fhir+json")
    assert answer.status_code == 200, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert the_visit(setup, appointment)[1].start == start
    cancelled = engine.fhir_appointment(
        appointment,
        start,
        status="cancelled",
        updated=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
    )
    assert post(app, setup, cancelled, "application/fhir+json").status_code == 200
    assert the_visit(setup, appointment)[1].cancelled_at is not None
    bad = post(app, setup, b'{"resourceType": "Patient"}', "application/fhir+json")
    assert bad.status_code == 400 and bad.json()["issue"][0]["severity"] == "error"
    assert "SCHED-BAD-MESSAGE" in bad.json()["issue"][0]["diagnostics"]


def test_a_body_over_64_kib_is_413(app, setup):
    body = engine.siu("S12", "APPT-BIG", soon()) + b"NTE|1||" + b"x" * 70_000 + b"\r"
    answer = post(app, setup, body)
    assert answer.status_code == 413 and msa(answer)[1] == "AR"


def test_the_journey_an_s12_becomes_a_confirmation_on_the_phone_and_its_link_opens(app, setup):
    """The timer (every minute) sends the confirmation; its delivery report reaches the ledger;
    the link in the text opens the meeting lobby."""
    from urllib.parse import quote

    from lib.sms.ledger import Ledger

    admin, endpoint = app.session("admin"), setup["endpoint"].id
    numbers = admin.get(app.api("config/sms/numbers"), timeout=30).json()["items"]
    row = next(n for n in numbers if n["number"] == "+18335550100")
    # Keep the links of endpoints other tests made, as long as they still exist.
    known = {e["id"] for e in admin.get(app.api("config/endpoints"), timeout=30).json()["items"]}
    linked = admin.put(
        app.api(f"config/sms/numbers/{quote('+18335550100')}"),
        timeout=30,
        headers={"If-Match": row["etag"]} if row["etag"] else {},
        json={"endpoints": sorted({*(set(row["endpoints"]) & known), endpoint})},
    )
    assert linked.status_code == 200, linked.text
    settings = admin.get(app.api(f"config/sms/endpoints/{endpoint}"), timeout=10)
    on = admin.patch(
        app.api(f"config/sms/endpoints/{endpoint}"),
        timeout=10,
        headers={"If-Match": settings.headers["ETag"]},
        json={
            "enabled": True,
            "organization_name": "Fabrikam Clinics",
            "quiet_hours": {"start": "00:00", "end": "00:00"},
        },
    )
    assert on.status_code == 200, on.text
    phone = f"+155555501{secrets.randbelow(90) + 10}"  # 555-01xx: fiction, and valid here
    appointment = f"APPT-{secrets.token_hex(4)}"
    body = engine.siu("S12", appointment, soon(20), phone=phone)
    assert post(app, setup, body).status_code == 200
    deadline = time.monotonic() + 90  # the next timer run, at the next minute
    while time.monotonic() < deadline and not app.sandbox.acs.sent_to(phone):
        time.sleep(0.5)
    [text] = app.sandbox.acs.sent_to(phone)
    assert text.message.startswith("Fabrikam Clinics: video visit") and "/api/j/" in text.message
    key, _ = the_visit(setup, appointment)
    ledger = Ledger(setup["store"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and ledger.rows.get(key, "booked-v1").state != "delivered":
        time.sleep(0.3)
    assert ledger.rows.get(key, "booked-v1").state == "delivered"
    link = next(w for w in text.message.split() if "/api/j/" in w)
    early = app.session().get(link, allow_redirects=False, timeout=30)
    # No clinician has launched it and the endpoint has no default organizer: not yet.
    assert early.status_code == 409 and "LAUNCH-NO-ORGANIZER" in early.text
    from dev.sandbox.directory import USERS

    current = admin.get(app.api(f"config/endpoints/{endpoint}"), timeout=10)
    launch = {**current.json()["launch"], "default_organizer": USERS[0].object_id}
    patched = admin.patch(
        app.api(f"config/endpoints/{endpoint}"),
        json={"launch": launch},
        headers={"If-Match": current.headers["ETag"]},
        timeout=30,
    )
    assert patched.status_code == 200, patched.text
    time.sleep(5.5)  # the app's endpoint snapshot (SNAPSHOT_TTL) on its other instances
    opened = app.session().get(link, allow_redirects=False, timeout=30)
    assert opened.status_code == 302 and "/graph/meet/" in opened.headers["Location"]
    # The patient's arrival travels the visit-events queue like every source's: within seconds.
    deadline = time.monotonic() + 30
    while not (events := VisitStore(setup["store"]).events(key)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(e.kind, e.role, e.source) for e in events] == [("arrived", "patient", "sms")]
