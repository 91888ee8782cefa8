"""The Communication Services stand-in, driven with the real SDKs over HTTPS: HMAC-SHA256
authentication (wrong key, changed body, stale date), SMS send with repeatability, carrier
opt-out ("blocked"), throttling and injected faults, the phone-numbers long-running operations,
Event Grid pushes (handshake, delivery reports, inbound texts, retries) and the phone page."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from dev.sandbox.acs import auth
from dev.sandbox.acs.numbers import SEED_NUMBER
from dev.sandbox.acs.texts import BLOCKED_MESSAGE

PATIENT = "+15555550101"
OTHER = "+15555550102"


@pytest.fixture
def acs(clean_sandbox, sandbox_trust):
    yield clean_sandbox.acs
    clean_sandbox.acs.rate_per_minute = 200


@pytest.fixture
def sms(acs):
    from azure.communication.sms import SmsClient

    return SmsClient.from_connection_string(acs.connection_string, retry_total=0)


def signed(
    acs,
    method: str,
    path: str,
    body: bytes,
    key: str | None = None,
    date: str | None = None,
    host: str | None = None,
) -> dict[str, str]:
    """The headers the SDK's HMAC policy sends, made by hand so a test can bend one of them."""
    host = host or acs.origin.removeprefix("https://")
    date = date or email.utils.formatdate(usegmt=True)
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    signature = auth.sign(
        key or acs.access_keys[0], auth.string_to_sign(method, path, date, host, digest)
    )
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 SignedHeaders={auth.SIGNED_HEADERS}&Signature={signature}",
        "Content-Type": "application/json",
    }


def send_body(to: str = PATIENT, request_id: str | None = None, message: str = "Hello") -> bytes:
    recipient = {
        "to": to,
        "repeatabilityRequestId": request_id or str(uuid.uuid4()),
        "repeatabilityFirstSent": email.utils.formatdate(usegmt=True),
    }
    return json.dumps(
        {
            "from": SEED_NUMBER,
            "smsRecipients": [recipient],
            "message": message,
            "smsSendOptions": {"enableDeliveryReport": False},
        }
    ).encode()


def raw_send(acs, http: requests.Session, body: bytes, **bend: Any) -> requests.Response:
    path = "/sms?api-version=2021-03-07"
    headers = signed(acs, "POST", path, bend.pop("signed_body", body), **bend)
    return http.post(f"{acs.origin}{path}", data=body, headers=headers, timeout=10)


# -- authentication -------------------------------------------------------------------------------
def test_the_sdk_sends_and_the_text_is_recorded(acs, sms):
    [result] = sms.send(
        from_=SEED_NUMBER,
        to=PATIENT,
        message="Your visit is at 9:30.",
        enable_delivery_report=True,
        tag="visit-1",
    )
    assert result.successful and result.http_status_code == 202
    [text] = acs.sent_to(PATIENT)
    assert (text.id, text.message, text.sender) == (
        result.message_id,
        "Your visit is at 9:30.",
        SEED_NUMBER,
    )
    assert text.tag == "visit-1" and text.delivery_report
    uuid.UUID(text.repeatability_request_id)  # the SDK's own per-call uuid4
    assert email.utils.parsedate_to_datetime(text.repeatability_first_sent)


def test_a_wrong_access_key_is_401_and_nothing_is_sent(acs):
    from azure.communication.sms import SmsClient
    from azure.core.exceptions import ClientAuthenticationError

    wrong = base64.b64encode(b"not-the-key-of-this-resource!!!!").decode()
    client = SmsClient.from_connection_string(f"endpoint={acs.endpoint};accesskey={wrong}")
    with pytest.raises(ClientAuthenticationError):
        client.send(from_=SEED_NUMBER, to=PATIENT, message="x")
    assert acs.sent_to(PATIENT) == []


@pytest.mark.parametrize("bend", ["body", "date", "host", "key", "scheme"])
def test_a_request_signed_for_something_else_is_401(acs, sandbox_http, bend):
    body = send_body()
    kwargs: dict[str, Any] = {
        "body": {"signed_body": send_body(message="Something else")},
        "date": {"date": email.utils.formatdate(time.time() - 3600, usegmt=True)},
        "host": {"host": "evil.communication.azure.com"},
        "key": {"key": base64.b64encode(b"x" * 32).decode()},
        "scheme": {},
    }[bend]
    if bend == "scheme":
        answer = sandbox_http.post(
            f"{acs.origin}/sms?api-version=2021-03-07",
            data=body,
            headers={"Authorization": "Bearer abc"},
            timeout=10,
        )
    else:
        answer = raw_send(acs, sandbox_http, body, **kwargs)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "Denied"
    assert acs.sent_to(PATIENT) == []


def test_a_correctly_signed_request_by_hand_passes(acs, sandbox_http):
    answer = raw_send(acs, sandbox_http, send_body())
    assert answer.status_code == 202, answer.text
    assert answer.json()["value"][0]["successful"] is True


# -- repeatability, opt-out, throttling, faults ---------------------------------------------------
def test_a_repeated_request_id_is_answered_again_but_sent_once(acs, sandbox_http):
    request_id = str(uuid.uuid4())
    first = raw_send(acs, sandbox_http, send_body(request_id=request_id)).json()["value"][0]
    again = raw_send(acs, sandbox_http, send_body(request_id=request_id)).json()["value"][0]
    assert first["messageId"] == again["messageId"]
    assert again["repeatabilityResult"] == "accepted"
    assert len(acs.sent_to(PATIENT)) == 1 and acs.texts.repeats == 1


def test_stop_blocks_the_pair_and_start_unblocks_it(acs, sms):
    sms.send(from_=SEED_NUMBER, to=PATIENT, message="Reminder")
    acs.reply(PATIENT, "stop")
    [blocked] = sms.send(from_=SEED_NUMBER, to=PATIENT, message="Another")
    assert not blocked.successful and blocked.http_status_code == 400
    assert blocked.error_message == BLOCKED_MESSAGE
    [other] = sms.send(from_=SEED_NUMBER, to=OTHER, message="Not blocked")
    assert other.successful
    acs.reply(PATIENT, "START")
    assert sms.send(from_=SEED_NUMBER, to=PATIENT, message="Back")[0].successful
    assert [t.message for t in acs.sent_to(PATIENT)] == ["Reminder", "Back"]


def test_a_blocked_recipient_can_be_injected(acs, sms):
    acs.block(OTHER)
    assert sms.send(from_=SEED_NUMBER, to=OTHER, message="x")[0].error_message == BLOCKED_MESSAGE


def test_over_the_numbers_rate_is_429_with_retry_after(acs, sandbox_http):
    acs.rate_per_minute = 2
    statuses = [raw_send(acs, sandbox_http, send_body()).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    throttled = raw_send(acs, sandbox_http, send_body())
    assert 1 <= int(throttled.headers["Retry-After"]) <= 61
    assert len(acs.sent_to(PATIENT)) == 2


def test_injected_503_and_429_reach_the_sdk(acs, sms, clean_sandbox):
    from azure.core.exceptions import HttpResponseError

    clean_sandbox.inject("/sms", status=503)
    clean_sandbox.inject("/sms", status=429, retry_after=3)
    for status in (503, 429):
        with pytest.raises(HttpResponseError) as caught:
            sms.send(from_=SEED_NUMBER, to=PATIENT, message="x")
        assert caught.value.status_code == status
    assert acs.sent_to(PATIENT) == []


def test_a_timeout_after_accepting_sent_the_text(acs, clean_sandbox):
    """The worst case for exactly-once: the service took the text, the caller saw nothing."""
    from azure.communication.sms import SmsClient
    from azure.core.exceptions import ServiceResponseError

    clean_sandbox.inject("/sms", status=504, after=True, delay=3)
    client = SmsClient.from_connection_string(acs.connection_string, retry_total=0, read_timeout=1)
    with pytest.raises(ServiceResponseError):
        client.send(from_=SEED_NUMBER, to=PATIENT, message="Did it go?")
    assert [t.message for t in acs.sent_to(PATIENT)] == ["Did it go?"]


def test_chaos_fails_a_share_of_sends_with_mixed_faults(acs, sandbox_http):
    acs.set_chaos(0.5, seed=7, timeout_s=0.01)
    statuses = [raw_send(acs, sandbox_http, send_body()).status_code for _ in range(40)]
    assert {429, 503, 202} <= set(statuses)
    assert 5 < statuses.count(202) < 40
    assert len(acs.sent_to(PATIENT)) >= statuses.count(202)  # timeouts were accepted too


def test_an_unknown_sender_or_bad_recipient_is_400(acs, sandbox_http):
    body = json.loads(send_body())
    for bent in ({**body, "from": "+18335550999"}, {**body, "smsRecipients": [{"to": "555-0101"}]}):
        answer = raw_send(acs, sandbox_http, json.dumps(bent).encode())
        assert answer.status_code == 400, answer.text


# -- phone numbers --------------------------------------------------------------------------------
def _numbers_client(acs):
    from azure.communication.phonenumbers import PhoneNumbersClient

    return PhoneNumbersClient.from_connection_string(acs.connection_string)


def _search(client):
    from azure.communication.phonenumbers import (
        PhoneNumberAssignmentType,
        PhoneNumberCapabilities,
        PhoneNumberCapabilityType,
        PhoneNumberType,
    )

    capabilities = PhoneNumberCapabilities(
        calling=PhoneNumberCapabilityType.NONE, sms=PhoneNumberCapabilityType.INBOUND_OUTBOUND
    )
    return client.begin_search_available_phone_numbers(
        "US",
        PhoneNumberType.TOLL_FREE,
        PhoneNumberAssignmentType.APPLICATION,
        capabilities,
        polling_interval=0.2,
    )


def test_search_and_purchase_are_long_running_operations(acs):
    acs.numbers.seconds = 1.0
    client = _numbers_client(acs)
    poller = _search(client)
    assert not poller.done()  # it takes time, as in Azure
    found = poller.result(timeout=30)
    [number] = found.phone_numbers
    assert number.startswith("+1833555") and found.cost.currency_code == "USD"
    assert number not in [n.phone_number for n in client.list_purchased_phone_numbers()]
    client.begin_purchase_phone_numbers(found.search_id, polling_interval=0.2).result(timeout=30)
    assert number in [n.phone_number for n in client.list_purchased_phone_numbers()]
    assert client.get_purchased_phone_number(number).phone_number_type == "tollFree"
    assert acs.numbers.owns(number)


def test_a_failed_operation_fails_the_poller(acs):
    from azure.core.exceptions import HttpResponseError

    acs.numbers.seconds = 0.3
    acs.numbers.fail_next = "No toll-free numbers are available."
    with pytest.raises(HttpResponseError):
        _search(_numbers_client(acs)).result(timeout=30)


# -- Event Grid -----------------------------------------------------------------------------------
@dataclass
class Webhook:
    """A plain-http Event Grid endpoint: answers the handshake (or not) and keeps each POST."""

    url: str = ""
    echo: bool = True
    fail_next: int = 0
    posts: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [
            e
            for h, body in self.posts
            if h.get("aeg-event-type") == "Notification"
            for e in body
            if e["eventType"] == event_type
        ]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.events(event_type)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no {event_type} in {timeout}s: {self.posts}"
                self.arrived.wait(left)
        return self.events(event_type)


@pytest.fixture
def webhook(acs) -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer: dict[str, Any] = {}
            status = 200
            if headers.get("aeg-event-type") == "SubscriptionValidation":
                if hook.echo:
                    answer = {"validationResponse": body[0]["data"]["validationCode"]}
            elif hook.fail_next > 0:
                hook.fail_next -= 1
                status = 500
            with hook.arrived:
                hook.posts.append((headers, body))
                hook.arrived.notify_all()
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/api/sms/events?code=s3cret"
    previous = acs.events_url  # the session's app may be subscribed: give it back afterwards
    acs.configure_connector(sms_events_url=hook.url)
    yield hook
    acs.events.wait_idle(10)
    acs.events.subscription = None  # the next event subscribes the previous endpoint again
    acs.events_url = previous
    server.shutdown()
    server.server_close()


def test_the_handshake_comes_first_and_activates_the_subscription(acs, sms, webhook):
    sms.send(from_=SEED_NUMBER, to=PATIENT, message="x", enable_delivery_report=True)
    webhook.wait_for("Microsoft.Communication.SMSDeliveryReportReceived")
    headers, first = webhook.posts[0]
    assert headers["aeg-event-type"] == "SubscriptionValidation"
    assert first[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert acs.events.subscription.state == "active"


def test_a_delivery_report_names_the_message_and_the_tag(acs, sms, webhook):
    [sent] = sms.send(
        from_=SEED_NUMBER, to=PATIENT, message="x", enable_delivery_report=True, tag="ledger-42"
    )
    acs.undeliverable(OTHER)
    [failed] = sms.send(from_=SEED_NUMBER, to=OTHER, message="y", enable_delivery_report=True)
    reports = {
        e["data"]["MessageId"]: e
        for e in webhook.wait_for("Microsoft.Communication.SMSDeliveryReportReceived", 2)
    }
    ok, bad = reports[sent.message_id], reports[failed.message_id]
    assert ok["id"] == sent.message_id and ok["data"]["Tag"] == "ledger-42"
    assert (ok["data"]["DeliveryStatus"], bad["data"]["DeliveryStatus"]) == ("Delivered", "Failed")
    assert ok["data"]["To"] == PATIENT and ok["data"]["From"] == SEED_NUMBER
    assert ok["subject"] == f"/phonenumber/{SEED_NUMBER.lstrip('+')}"


def test_no_report_without_enable_delivery_report(acs, sms, webhook):
    sms.send(from_=SEED_NUMBER, to=PATIENT, message="quiet")
    acs.reply(PATIENT, "hello")
    webhook.wait_for("Microsoft.Communication.SMSReceived")
    assert webhook.events("Microsoft.Communication.SMSDeliveryReportReceived") == []


def test_a_reply_arrives_as_sms_received_to_the_number_that_texted(acs, sms, webhook):
    sms.send(from_=SEED_NUMBER, to=PATIENT, message="Reminder")
    acs.reply(PATIENT, "STOP")
    [received] = webhook.wait_for("Microsoft.Communication.SMSReceived")
    data = received["data"]
    assert (data["From"], data["To"], data["Message"]) == (PATIENT, SEED_NUMBER, "STOP")
    assert received["id"] == data["MessageId"]


def test_a_failing_webhook_is_retried_with_the_delivery_count(acs, webhook):
    webhook.fail_next = 1
    acs.reply(PATIENT, "HELP")
    webhook.wait_for("Microsoft.Communication.SMSReceived", 2)
    counts = [
        h["aeg-delivery-count"]
        for h, body in webhook.posts
        if h["aeg-event-type"] == "Notification"
    ]
    assert counts == ["0", "1"]
    assert acs.events.wait_idle(10) and acs.events.dead_letters == []


def test_duplicates_are_delivered_when_asked(acs, webhook):
    acs.events.duplicate = True
    acs.reply(PATIENT, "START")
    first, second = webhook.wait_for("Microsoft.Communication.SMSReceived", 2)
    assert first["id"] == second["id"]


def test_without_the_echo_no_event_is_delivered(acs, webhook):
    webhook.echo = False
    acs.reply(PATIENT, "STOP")
    assert acs.events.subscription.state == "failed"
    assert [h["aeg-event-type"] for h, _ in webhook.posts] == ["SubscriptionValidation"]


# -- phone page -----------------------------------------------------------------------------------
def test_the_phone_page_shows_texts_and_takes_a_reply(acs, sms, sandbox_http):
    sms.send(from_=SEED_NUMBER, to=PATIENT, message="Join: https://example.test/j/abc <b>")
    index = sandbox_http.get(f"{acs.origin}/phone", timeout=10)
    assert (
        "Jordan Rivera" in index.text
        and "default-src 'none'" in index.headers["Content-Security-Policy"]
    )
    page = sandbox_http.get(f"{acs.origin}/phone/%2B15555550101", timeout=10).text
    assert "<a href='https://example.test/j/abc'>" in page and "&lt;b&gt;" in page
    answer = sandbox_http.post(
        f"{acs.origin}/phone/%2B15555550101/reply",
        data={"message": "STOP"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 303
    assert (SEED_NUMBER, PATIENT) in acs.texts.blocked
    assert [t.message for t in acs.texts.conversation(PATIENT)][-1] == "STOP"


def test_the_api_is_at_the_root_of_its_own_origin(acs, sandbox, sandbox_http):
    assert acs.endpoint == f"{sandbox.origins['acs']}/"
    elsewhere = sandbox_http.post(f"{sandbox.origins['graph']}/sms", timeout=10)
    assert elsewhere.status_code == 404
    assert sandbox_http.get(f"{acs.origin}/_sandbox/health", timeout=10).json()["ok"]
