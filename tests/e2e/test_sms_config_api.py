"""The SMS configuration over real HTTP, as an admin does it (README "SMS"): consent, order a
number and watch its progress, link it to an endpoint, switch texts on; roles, ETags, audit."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import pytest


@pytest.fixture
def admin(app):
    return app.session("admin")


def consent(app, admin) -> dict:
    current = admin.get(app.api("config/sms/consent"), timeout=10)
    etag = current.headers.get("ETag")
    body = {"sends_on_behalf_of_organization": True, "attendees_consented": True}
    answer = admin.put(
        app.api("config/sms/consent"),
        json=body,
        timeout=10,
        headers={"If-Match": etag} if etag else {},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def cerner_endpoint(app, admin) -> str:
    base = app.sandbox.ehr_base("cerner")
    for item in admin.get(app.api("config/endpoints"), timeout=10).json()["items"]:
        if item["fhir_base_url"] == base.rstrip("/"):
            if item["enabled"] and item["status"] == "active":
                return item["id"]
            # Another test left it disabled or changed: one base, one endpoint, so start anew.
            url = app.api(f"config/endpoints/{item['id']}")
            etag = admin.get(url, timeout=10).headers["ETag"]
            assert admin.delete(url, headers={"If-Match": etag}, timeout=10).status_code == 204
    body = {
        "id": f"sms-{uuid.uuid4().hex[:8]}",
        "fhir_base_url": base,
        "vendor": "cerner",
        "environment": "test",
        "organization": "Fabrikam Clinics",
        "client_id": "evc-cerner-test",
        "client_auth": {"method": "client_secret_basic", "secret_setting": "EHR_SECRET_CERNER"},
    }
    created = admin.post(app.api("config/endpoints"), json=body, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_consent_records_the_admin_and_readers_cannot_change_it(app, admin):
    recorded = consent(app, admin)
    assert recorded["attendees_consented"]["by_name"]
    reader = app.session("reader")
    assert reader.get(app.api("config/sms/consent"), timeout=10).status_code == 200
    refused = reader.put(app.api("config/sms/consent"), json={}, timeout=10)
    assert refused.status_code == 403
    half = admin.put(
        app.api("config/sms/consent"),
        timeout=10,
        json={"sends_on_behalf_of_organization": True, "attendees_consented": False},
    )
    assert half.status_code == 422 and half.json()["code"] == "REQ-VALIDATION"


def test_an_admin_orders_a_number_links_it_and_switches_texts_on(app, admin):
    app.sandbox.acs.numbers.seconds = 1.0
    consent(app, admin)
    started = admin.post(app.api("config/sms/number-orders"), json={}, timeout=30)
    assert started.status_code == 202, started.text
    status_url = app.url + started.headers["Location"]
    assert started.headers["Retry-After"] and started.json()["state"] == "searching"
    deadline = time.monotonic() + 60
    order = started.json()
    while order["state"] in ("searching", "purchasing") and time.monotonic() < deadline:
        time.sleep(0.3)
        order = app.session("reader").get(status_url, timeout=30).json()
    assert order["state"] == "succeeded", order
    number = order["number"]

    endpoint = cerner_endpoint(app, admin)
    numbers = admin.get(app.api("config/sms/numbers"), timeout=30).json()["items"]
    assert number in [n["number"] for n in numbers]
    linked = admin.put(
        app.api(f"config/sms/numbers/{quote(number)}"), timeout=30, json={"endpoints": [endpoint]}
    )
    assert linked.status_code == 200, linked.text
    again = admin.put(
        app.api(f"config/sms/numbers/{quote(number)}"), timeout=30, json={"endpoints": [endpoint]}
    )
    assert again.status_code == 428  # once linked, a change names the version it read

    settings = admin.get(app.api(f"config/sms/endpoints/{endpoint}"), timeout=10)
    assert settings.json()["number"] == number
    on = admin.patch(
        app.api(f"config/sms/endpoints/{endpoint}"),
        timeout=10,
        headers={"If-Match": settings.headers["ETag"]},
        json={
            "enabled": True,
            "organization_name": "Fabrikam Clinics",
            "reminder_offsets_minutes": [60, 5],
        },
    )
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] and on.json()["reminder_offsets_minutes"] == [60, 5]
    stale = admin.patch(
        app.api(f"config/sms/endpoints/{endpoint}"),
        timeout=10,
        headers={"If-Match": settings.headers["ETag"]},
        json={"language": "es"},
    )
    assert stale.status_code == 412 and stale.json()["code"] == "CFG-STALE-ETAG"

    audit = admin.get(app.api("config/audit"), params={"pageSize": 200}, timeout=10).json()
    done = {e["action"] for e in audit["items"]}
    assert {"sms.consent", "sms.order.create", "sms.number.link", "sms.settings.update"} <= done


def test_unknown_orders_numbers_and_environments_are_404(app, admin):
    for path in (
        "config/sms/number-orders/0123456789abcdef",
        "config/sms/number-orders/x!y",
        "config/sms/certificates/staging",
    ):
        answer = admin.get(app.api(path), timeout=10)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.headers["Content-Type"].startswith("application/problem+json")
