"""'Send link by SMS' on the clinician's visit page, over real HTTP: the number read just in time
from the EHR (Patient.telecom, with the launch's token the page holds), shown masked, one text
through the ledger as kind `on-demand`, a second press within a minute refused, and the number
nowhere in storage."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote, urlsplit

import pytest
from azure.data.tables import TableServiceClient

from dev.browser import Browser
from dev.sandbox.acs.numbers import SEED_NUMBER
from dev.sandbox.ehr.data import PATIENTS
from dev.stack import settings_env
from lib.launch.visit_page import PAGE_PURPOSE
from lib.privacy import PrivacyKeys
from tests.e2e.test_launch import launch_url
from tests.e2e.test_sms_config_api import cerner_endpoint, consent

CLINICIAN, SLOT = "lindqvist", "lindqvist-1400"


def texts_on(app, endpoint: str, enabled: bool = True) -> None:
    """The number linked to ``endpoint`` (beside the endpoints it already serves), texts on."""
    admin = app.session("admin")
    consent(app, admin)
    url = app.api(f"config/sms/numbers/{quote(SEED_NUMBER)}")
    current = {n["number"]: n for n in admin.get(app.api("config/sms/numbers")).json()["items"]}
    row = current.get(SEED_NUMBER, {})
    if endpoint not in row.get("endpoints", []):
        linked = admin.put(
            url,
            json={"endpoints": sorted({*row.get("endpoints", []), endpoint})},
            headers={"If-Match": row["etag"]} if row.get("etag") else {},
        )
        assert linked.status_code == 200, linked.text
    settings_url = app.api(f"config/sms/endpoints/{endpoint}")
    etag = admin.get(settings_url).headers["ETag"]
    body = {"enabled": enabled, "organization_name": "Fabrikam Clinics"}
    changed = admin.patch(settings_url, json=body, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.text


@pytest.fixture(scope="module")
def endpoint(app) -> str:
    eid = cerner_endpoint(app, app.session("admin"))
    texts_on(app, eid)
    return eid


def page_token(app, endpoint: str) -> str:
    """A visit page as the clinician's second launch leaves it (the first one goes through the
    Microsoft sign-in, after which the page holds no EHR token)."""
    browser = Browser(app.sandbox, entra_user=CLINICIAN)
    kw = {"clinician": CLINICIAN, "appointment": SLOT}
    browser.go(launch_url(app, endpoint, "provider", "cerner", **kw))
    again = browser.go(launch_url(app, endpoint, "provider", "cerner", **kw))
    assert again.response.status_code == 200 and "/api/visit#" in again.url, again.url
    return urlsplit(again.url).fragment


def call(app, method: str, path: str, token: str, **kw):
    return app.session().request(
        method, app.api(path), headers={"X-Visit-Token": token}, timeout=30, **kw
    )


def the_patients_phone(app) -> str:
    slot = next(s for s in app.sandbox.cerner.chart.slots(clinician=CLINICIAN) if s.key == SLOT)
    return next(p.phone for p in PATIENTS if p.key == slot.patient)


def test_the_clinician_confirms_the_masked_number_and_one_text_goes(app, endpoint):
    token, phone = page_token(app, endpoint), the_patients_phone(app)
    before = len(app.sandbox.acs.sent_to(phone))
    available = call(app, "GET", "visit/sms", token).json()
    assert available == {"available": True, "reason": None}

    preview = call(app, "POST", "visit/sms/preview", token)
    assert preview.status_code == 200, preview.text
    assert preview.json()["masked"] == f"•••• ••{phone[-2:]}"
    assert phone not in preview.text and phone[-4:] not in preview.text

    sent = call(app, "POST", "visit/sms", token, json={"confirm": preview.json()["confirm"]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["state"] == "sent", sent.json()
    texts = app.sandbox.acs.sent_to(phone)[before:]
    assert len(texts) == 1 and "/api/j/" in texts[0].message and texts[0].sender == SEED_NUMBER
    assert texts[0].message.startswith("Fabrikam Clinics: join your video visit")

    again = call(app, "POST", "visit/sms", token, json={"confirm": preview.json()["confirm"]})
    assert again.status_code == 200 and again.json()["state"] == "already_sent"
    time.sleep(1)
    assert len(app.sandbox.acs.sent_to(phone)) == before + 1

    tables = TableServiceClient.from_connection_string(app.storage)
    ledger = tables.get_table_client("e2eSmsLedger")
    rows = [r for r in ledger.list_entities() if r["RowKey"].startswith("on-demand-")]
    assert any(r["state"] in ("sent", "delivered") for r in rows)  # (its delivery report)
    for table in ("e2eSmsLedger", "e2eSmsDue", "e2eSealed", "e2eVisits"):
        for row in tables.get_table_client(table).list_entities():
            assert phone not in str(dict(row)) and phone[1:] not in str(dict(row)), table


def test_a_number_changed_since_the_confirmation_is_not_texted(app, endpoint):
    token = page_token(app, endpoint)
    refused = call(app, "POST", "visit/sms", token, json={"confirm": "0" * 32})
    assert refused.status_code == 409 and refused.json()["code"] == "SMS-PHONE-CHANGED"
    missing = call(app, "POST", "visit/sms", token, json={})
    assert missing.status_code == 422


def test_a_page_without_the_launchs_token_says_to_open_the_visit_again(app, endpoint):
    token = page_token(app, endpoint)
    held = app.session().get(app.api("visit/status"), headers={"X-Visit-Token": token})
    assert held.status_code == 200
    body = token.split(".")[0]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert "t" in claims  # the launch's EHR access, sealed: not readable in the token
    assert claims["t"].startswith("s1.") and "a" not in claims  # lib/sealing.py format
    # The same visit's page, as the first launch (through the Microsoft sign-in) leaves it.
    privacy = PrivacyKeys(settings_env()["CONNECTOR_HASH_KEY"])
    bare = privacy.sign({"v": claims["v"], "e": claims["e"]}, purpose=PAGE_PURPOSE, ttl_seconds=600)
    refused = call(app, "POST", "visit/sms/preview", bare)
    assert refused.status_code == 409 and refused.json()["code"] == "SMS-PHONE-UNAVAILABLE"


def test_texts_off_disable_the_button(app, endpoint):
    token = page_token(app, endpoint)
    texts_on(app, endpoint, enabled=False)
    try:
        available = call(app, "GET", "visit/sms", token).json()
        assert available["available"] is False and "off" in available["reason"]
        refused = call(app, "POST", "visit/sms/preview", token)
        assert refused.status_code == 409 and refused.json()["code"] == "SMS-OFF-FOR-ENDPOINT"
    finally:
        texts_on(app, endpoint)
    forged = call(app, "GET", "visit/sms", "not-a-token")
    assert forged.status_code == 404 and forged.json()["code"] == "VISIT-LINK-INVALID"
