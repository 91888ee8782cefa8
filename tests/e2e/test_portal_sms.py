"""The portal's texts pages over HTTP, as an admin uses them: consent, a number ordered and its
progress watched, linked to an endpoint, the endpoint's settings saved (and refused with named
problems), a certificate uploaded; each change in the audit log as the config API's are."""

from __future__ import annotations

import html
import time
from urllib.parse import quote

import pytest

from dev.sandbox.ehr.scheduling import key_pair
from tests.e2e.portal_client import Portal, error_code
from tests.e2e.test_sms_config_api import cerner_endpoint


@pytest.fixture(scope="module")
def admin(app):
    portal = Portal(app, "admin")
    yield portal
    portal.close()


def etag_in(page: str) -> str:
    """The first form's ETag field, as a browser sends it back (unescaped)."""
    return html.unescape(page.split('name="etag" value="', 1)[1].split('"', 1)[0])


def test_consent_order_link_settings_and_certificate(app, admin):
    app.sandbox.acs.numbers.seconds = 1.0
    endpoint = cerner_endpoint(app, app.session("admin"))
    page = admin.get("sms")
    assert page.status_code == 200 and "Texts (SMS)" in page.text
    etag = etag_in(admin.get("sms").text)
    agreed = admin.post("sms/consent", {"etag": etag, "sends_on_behalf_of_organization": "on",
                                        "attendees_consented": "on"})  # fmt: skip
    assert agreed.status_code == 303, agreed.text
    assert 'data-testid="consent-recorded"' in admin.get("sms").text

    ordered = admin.post("sms/orders", {"area_code": "833"})
    assert ordered.status_code == 303, ordered.text
    progress_path = ordered.headers["Location"].removeprefix("/api/portal/")
    deadline = time.monotonic() + 60
    while 'data-state="succeeded"' not in (progress := admin.get(progress_path)).text:
        assert time.monotonic() < deadline, progress.text[-800:]
        assert "failed" not in progress.text
        assert progress.headers.get("Refresh") == "2"  # reloads itself while the order runs
        time.sleep(0.5)
    number = progress.text.split('<span class="code">', 1)[1].split("<", 1)[0]
    assert number.startswith("+1833") and "Refresh" not in progress.headers

    admin.get("sms")
    linked = admin.post(f"sms/numbers/{quote(number)}/link", {f"link-{endpoint}": "on"})
    assert linked.status_code == 303, linked.text
    assert (
        number
        == app.session("admin").get(app.api(f"config/sms/endpoints/{endpoint}")).json()["number"]
    )

    form = admin.get(f"sms/endpoints/{endpoint}")
    etag = etag_in(form.text)
    fields = {
        "etag": etag, "enabled": "on", "organization_name": "Portal Clinic", "language": "es",
        "time_zone": "America/Denver", "default_region": "US", "confirm_scheduled": "on",
        "reminder_offsets_minutes": "1440, 30", "quiet_start": "22:00", "quiet_end": "07:00",
        "join_before": "20", "join_after": "45",
    }  # fmt: skip
    bad = admin.post(f"sms/endpoints/{endpoint}", {**fields, "time_zone": "Mars/Olympus"})
    assert bad.status_code == 422, bad.status_code
    assert "<strong>Clinic time zone</strong>" in bad.text, bad.text.split("problems")[-1][:600]
    assert 'value="Portal Clinic"' in bad.text  # what was typed stays
    # str.isdigit() is true of "²" (int() then raised: a 500) and of Arabic-Indic "٣٠" (int()
    # read 30): whole numbers are ASCII digits, anything else is named
    for name, typed, label in (
        ("join_before", "\u00b2", "Join link: minutes before"),
        ("join_after", "\u0663\u0660", "Join link: minutes after"),
        ("reminder_offsets_minutes", "1440, \u0663\u0660", "Reminders"),
    ):
        odd = admin.post(f"sms/endpoints/{endpoint}", {**fields, name: typed})
        assert odd.status_code == 422, (name, odd.status_code)
        assert f"<strong>{label}" in odd.text, (name, odd.text.split("problems")[-1][:600])
    saved = admin.post(f"sms/endpoints/{endpoint}", fields)
    assert saved.status_code == 303, saved.text
    api = app.session("admin").get(app.api(f"config/sms/endpoints/{endpoint}")).json()
    assert (api["enabled"], api["language"], api["time_zone"]) == (True, "es", "America/Denver")
    assert (
        api["reminder_offsets_minutes"] == [1440, 30] and api["join_window"]["after_minutes"] == 45
    )
    assert api["confirmations"] == {"scheduled": True, "updated": False, "cancelled": False}
    stale = admin.post(f"sms/endpoints/{endpoint}", fields)  # the same ETag again
    assert stale.status_code == 412 and error_code(stale) is None and "CFG-STALE-ETAG" in stale.text

    _, pem = key_pair(app.sandbox.state.state_dir)
    overview = admin.get("sms").text
    etag = etag_in(overview.split('action="/api/portal/sms/certificates/test"', 1)[1])
    uploaded = admin.post("sms/certificates/test", {"etag": etag, "certificate": pem})
    assert uploaded.status_code == 303, uploaded.text
    assert 'data-testid="certificate-test"' in admin.get("sms").text

    audit = app.session("admin").get(app.api("config/audit"), params={"pageSize": 200}).json()
    done = {e["action"] for e in audit["items"]}
    assert {"sms.consent", "sms.order.create", "sms.number.link", "sms.settings.update",
            "sms.certificate.upload"} <= done  # fmt: skip


def test_readers_and_approvers_may_not_open_the_texts_pages(app):
    for user in ("reader", "approver"):
        portal = Portal(app, user)
        page = portal.get("sms")
        assert page.status_code == 403 and error_code(page) == "AUTH-FORBIDDEN-ROLE"
        assert 'href="/api/portal/sms"' not in portal.get().text
        portal.close()
