"""Communication Services' Event Grid events over real HTTP: the sandbox subscribes the app's
webhook (handshake), a STOP from a patient's phone opts the number out, START opts it back in,
HELP is answered, delivery reports reach the ledger; a wrong secret is refused."""

from __future__ import annotations

import time
import uuid

from azure.data.tables import TableServiceClient

from dev.stack import settings_env
from lib.privacy import PrivacyKeys
from lib.sms.sending import OptOuts
from lib.storage import TableStore


def optouts(app) -> OptOuts:
    store = TableStore(TableServiceClient.from_connection_string(app.storage), "e2e")
    return OptOuts(store, PrivacyKeys(settings_env()["CONNECTOR_HASH_KEY"]))


def wait_until(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_stop_and_start_from_the_phone_reach_the_opt_out_list(app):
    acs = app.sandbox.acs
    phone = f"+1555555{uuid.uuid4().int % 9000 + 1000}"
    acs.reply(phone, "STOP")
    assert acs.events.subscription.state == "active", acs.events.subscription.detail  # handshake
    assert wait_until(lambda: optouts(app).has(phone))
    acs.reply(phone, "start")
    assert wait_until(lambda: not optouts(app).has(phone))


def test_help_is_answered_from_the_number_texted(app):
    from tests.e2e.test_sms_config_api import cerner_endpoint, consent

    admin = app.session("admin")
    consent(app, admin)
    endpoint = cerner_endpoint(app, admin)
    number = "+18335550100"
    current = admin.get(app.api("config/sms/numbers"), timeout=30).json()["items"]
    row = next(n for n in current if n["number"] == number)
    headers = {"If-Match": row["etag"]} if row["etag"] else {}
    # Keep the links of endpoints other tests made, as long as they still exist.
    known = {e["id"] for e in admin.get(app.api("config/endpoints"), timeout=30).json()["items"]}
    linked = admin.put(
        app.api(f"config/sms/numbers/%2B{number[1:]}"),
        headers=headers,
        json={"endpoints": sorted({*(set(row["endpoints"]) & known), endpoint})},
        timeout=30,
    )
    assert linked.status_code == 200, linked.text
    phone = f"+1555555{uuid.uuid4().int % 9000 + 1000}"
    app.sandbox.acs.reply(phone, "HELP", to=number)
    assert wait_until(lambda: len(app.sandbox.acs.sent_to(phone)) == 1)
    assert "Reply STOP" in app.sandbox.acs.sent_to(phone)[0].message


def test_a_wrong_secret_or_a_validation_without_it_is_refused(app):
    s = app.session()
    for url in (app.api("sms/events"), app.api("sms/events?secret=wrong")):
        answer = s.post(url, json=[{"id": "1", "eventType": "x", "data": {}}], timeout=10)
        assert answer.status_code == 401 and answer.json()["code"] == "SMS-EVENTS-REFUSED"
