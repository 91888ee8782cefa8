"""Azure Communication Services at the root of its own origin, as the real resource
(``https://<name>.communication.azure.com``) serves it: SMS send, phone numbers, Event Grid
pushes to the connector's webhook, and a sandbox phone page.

Connection string: ``endpoint=https://127.0.0.6:PORT/;accesskey=<ACS_ACCESS_KEY>`` (see
``connection_string``); every API call must be HMAC-signed with that key (``auth.py``).
"""

from __future__ import annotations

import random
import re
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote

from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox import certs
from dev.sandbox.acs import auth, phone_page
from dev.sandbox.acs.eventgrid import EventGrid, event
from dev.sandbox.acs.numbers import NumberStore
from dev.sandbox.acs.texts import Text, TextStore
from dev.sandbox.standin import StandIn, json_response, read_json

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

# base64 of b"sandbox-acs-access-key-not-secret!" : local only, like every sandbox secret.
DEFAULT_ACCESS_KEY = "c2FuZGJveC1hY3MtYWNjZXNzLWtleS1ub3Qtc2VjcmV0IQ=="
SMS_API_VERSIONS = frozenset({"2021-03-07", "2024-12-10-preview", "2025-05-30-preview"})
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_RECIPIENTS = 100
MAX_MESSAGE = 2048


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


class AcsStandIn(StandIn):
    name = "acs"
    title = "Azure Communication Services (SMS, phone numbers, Event Grid) + phone page"
    serves_root: ClassVar[bool] = True  # the API lives at /sms, /phoneNumbers, as in Azure

    def __init__(self, state: SandboxState) -> None:
        self.access_keys = [state.setting("ACS_ACCESS_KEY", DEFAULT_ACCESS_KEY)]
        self.texts = TextStore()
        self.numbers = NumberStore(seconds=float(state.setting("ACS_OPERATION_SECONDS", "3")))
        retries = state.setting("ACS_EVENT_RETRIES", "1,2,5")
        ca_file = certs.certs_dir(state.state_dir) / certs.CA_CERT_NAME
        self.events = EventGrid(
            [float(s) for s in retries.split(",") if s.strip()], ca_file=str(ca_file)
        )
        self.delivery_seconds = float(state.setting("ACS_DELIVERY_SECONDS", "0.5"))
        self.rate_per_minute = int(state.setting("ACS_RATE_PER_MINUTE", "200"))
        self.events_url = state.setting("ACS_EVENTS_URL", "")
        self.chaos: tuple[float, random.Random, float] | None = None  # (rate, rng, timeout s)
        self._subscribe_lock = threading.Lock()
        super().__init__(state)

    # -- routes ---------------------------------------------------------------------------------
    def routes(self) -> list[Rule]:
        return [
            Rule("/sms", endpoint=self.send, methods=["POST"]),
            Rule(
                "/availablePhoneNumbers/countries/<country>/:search",
                endpoint=self.search,
                methods=["POST"],
            ),
            Rule(
                "/availablePhoneNumbers/searchResults/<search_id>",
                endpoint=self.search_result,
                methods=["GET"],
            ),
            Rule("/availablePhoneNumbers/:purchase", endpoint=self.purchase, methods=["POST"]),
            Rule("/phoneNumbers/operations/<op_id>", endpoint=self.operation, methods=["GET"]),
            Rule("/phoneNumbers", endpoint=self.list_numbers, methods=["GET"]),
            Rule("/phoneNumbers/<number>", endpoint=self.get_number, methods=["GET"]),
            Rule("/eventgrid/validate", endpoint=self.validate_url, methods=["GET"]),
            Rule("/", endpoint=lambda request: redirect(self.url("/phone"), 302)),
            Rule("/phone", endpoint=self.phone_index, methods=["GET"]),
            Rule("/phone/<phone>", endpoint=self.phone_conversation, methods=["GET"]),
            Rule("/phone/<phone>/reply", endpoint=self.phone_reply, methods=["POST"]),
        ]

    def control_routes(self) -> list[Rule]:
        return [
            Rule("/", endpoint=self.c_summary, methods=["GET"]),
            Rule("/texts", endpoint=self.c_texts, methods=["GET"]),
            Rule("/reply", endpoint=self.c_reply, methods=["POST"]),
            Rule("/subscription", endpoint=self.c_subscribe, methods=["POST"]),
            Rule("/recipients", endpoint=self.c_recipients, methods=["POST"]),
            Rule("/settings", endpoint=self.c_settings, methods=["POST"]),
        ]

    # -- addresses ------------------------------------------------------------------------------
    def url(self, path: str = "") -> str:
        """At the origin's root (``/acs/...`` answers too, for the sandbox's prefix rule)."""
        return f"{self.origin}{path}"

    @property
    def endpoint(self) -> str:
        return f"{self.origin}/"

    @property
    def connection_string(self) -> str:
        """What the connector's ACS_CONNECTION_STRING is, against this sandbox."""
        return f"endpoint={self.endpoint};accesskey={self.access_keys[0]}"

    def describe(self) -> dict[str, str]:
        return {
            "origin": self.origin,
            "ACS_CONNECTION_STRING": self.connection_string,
            "phone page": self.url("/phone"),
            "numbers": ", ".join(n["phoneNumber"] for n in self.numbers.numbers()),
            "controls": f"{self.control_url}/",
        }

    def configure_connector(self, **where: Any) -> None:
        if where.get("sms_events_url"):
            self.events_url = where["sms_events_url"]
            self.events.subscription = None  # a new subscription, handshake on first use

    def on_reset(self) -> None:
        self.texts.reset()
        self.numbers.reset()
        self.events.reset()
        self.chaos = None

    def stop(self) -> None:
        self.events.stop()

    # -- SMS ------------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> Response | None:
        try:
            auth.verify(request, self.access_keys)
        except auth.AuthError as exc:
            return error(401, exc.code, exc.message)
        return None

    def send(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        if request.args.get("api-version") not in SMS_API_VERSIONS:
            return error(400, "InvalidApiVersion", "Unknown or missing api-version.")
        body = request.get_json(force=True, silent=True)
        problem = _send_problem(body, self.numbers)
        if problem:
            return error(400, "BadRequest", problem)
        sender = body["from"]
        if (wait := self.texts.rate_wait(sender, self.rate_per_minute)) > 0:
            return error(
                429,
                "TooManyRequests",
                "Rate limit of the sender number exceeded.",
                {"Retry-After": str(wait)},
            )
        if (chaos := self._chaos()) is not None and chaos != "timeout":
            return chaos
        options = body.get("smsSendOptions") or {}
        outcomes = [
            self.texts.send(sender, r, body["message"], options) for r in body["smsRecipients"]
        ]
        for outcome in outcomes:
            if outcome.text is not None and outcome.text.delivery_report:
                self._report_later(outcome.text)
        if chaos == "timeout":
            time.sleep(self.chaos[2] if self.chaos else 0)  # accepted; the answer comes too late
        return json_response({"value": [o.to_json() for o in outcomes]}, 202)

    def _chaos(self) -> Response | str | None:
        """With ``set_chaos(rate)`` that share of sends fails: 429, 503, or accepted-then-late."""
        if self.chaos is None:
            return None
        rate, rng, _ = self.chaos
        if rng.random() >= rate:
            return None
        kind = rng.choice(("429", "503", "timeout"))
        if kind == "429":
            return error(429, "TooManyRequests", "Throttled.", {"Retry-After": "1"})
        if kind == "503":
            return error(503, "ServiceUnavailable", "The service is unavailable.")
        return "timeout"

    def _report_later(self, text: Text) -> None:
        failed = text.recipient in self.texts.undeliverable
        status = "Failed" if failed else "Delivered"
        details = "Destination unreachable (4006)." if failed else "No error."
        self.texts.set_status(text.id, status.lower(), details)
        data = {
            "MessageId": text.id,
            "From": text.sender,
            "To": text.recipient,
            "DeliveryStatus": status,
            "DeliveryStatusDetails": details,
            "ReceivedTimestamp": _iso_now(),
            "DeliveryAttempts": [
                {
                    "Timestamp": _iso_now(),
                    "SegmentsSucceeded": 0 if failed else 1,
                    "SegmentsFailed": 1 if failed else 0,
                }
            ],
        }
        if text.tag:
            data["Tag"] = text.tag
        self.publish(
            event(
                "Microsoft.Communication.SMSDeliveryReportReceived",
                f"/phonenumber/{text.sender.lstrip('+')}",
                data,
                text.id,
            ),
            self.delivery_seconds,
        )

    # -- inbound texts ------------------------------------------------------------------------
    def reply(self, phone: str, message: str, to: str | None = None) -> Text:
        """The phone texts back (to the number that last texted it, or ``to``)."""
        our = to or self.texts.last_sender(phone) or self.numbers.numbers()[0]["phoneNumber"]
        text = self.texts.receive(phone, our, message)
        self.publish(
            event(
                "Microsoft.Communication.SMSReceived",
                f"/phonenumber/{our.lstrip('+')}",
                {
                    "MessageId": text.id,
                    "From": phone,
                    "To": our,
                    "Message": message,
                    "ReceivedTimestamp": _iso_now(),
                },
                text.id,
            )
        )
        return text

    def publish(self, item: dict[str, Any], delay: float = 0.0) -> None:
        self.ensure_subscription()
        self.events.publish(item, delay)

    def ensure_subscription(self) -> None:
        """Subscribe the connector's webhook (handshake) the first time an event needs it."""
        with self._subscribe_lock:
            sub = self.events.subscription
            if self.events_url and (sub is None or sub.state == "failed"):
                self.events.validation_url = self.url("/eventgrid/validate")
                self.events.subscribe(self.events_url)

    def validate_url(self, request: Request) -> Response:
        if self.events.validate_by_url(request.args.get("id", "")):
            return json_response({"validated": True})
        return error(404, "NotFound", "Unknown validation code.")

    # -- phone numbers ------------------------------------------------------------------------
    def search(self, request: Request, country: str) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        body = read_json(request)
        if body.get("phoneNumberType") not in ("tollFree", "geographic") or not body.get(
            "capabilities"
        ):
            return error(400, "BadRequest", "phoneNumberType and capabilities are required.")
        version = request.args.get("api-version", "")
        results = self.url(
            f"/availablePhoneNumbers/searchResults/{{search_id}}?api-version={version}"
        )
        op, found = self.numbers.search(country.upper(), body, results)
        return self._accepted(
            op.id, version, {"Location": op.resource_location or "", "search-id": found.id}
        )

    def search_result(self, request: Request, search_id: str) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        found = self.numbers.searches.get(search_id)
        if found is None:
            return error(404, "NotFound", "Unknown search.")
        return json_response(found.to_json())

    def purchase(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        op = self.numbers.purchase(str(read_json(request).get("searchId") or ""))
        if isinstance(op, str):
            return error(400, "BadRequest", op)
        return self._accepted(op.id, request.args.get("api-version", ""), {"purchase-id": op.id})

    def _accepted(self, op_id: str, version: str, extra: dict[str, str]) -> Response:
        location = self.url(f"/phoneNumbers/operations/{op_id}?api-version={version}")
        headers = {"Operation-Location": location, "operation-id": op_id, **extra}
        return Response(status=202, headers=headers)

    def operation(self, request: Request, op_id: str) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        op = self.numbers.operation(op_id)
        if op is None:
            return error(404, "NotFound", "Unknown operation.")
        now = time.time()
        headers = {} if op.status(now) in ("succeeded", "failed") else {"Retry-After": "1"}
        return json_response(op.to_json(now), headers=headers)

    def list_numbers(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        return json_response({"phoneNumbers": self.numbers.numbers()})

    def get_number(self, request: Request, number: str) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        found = self.numbers.purchased.get(unquote(number))
        if found is None:
            return error(404, "PhoneNumberNotFound", "The phone number is not in this resource.")
        return json_response(found)

    # -- phone page ---------------------------------------------------------------------------
    def phone_index(self, request: Request) -> Response:
        return phone_page.index(self.texts, self.url("/phone"))

    def phone_conversation(self, request: Request, phone: str) -> Response:
        return phone_page.conversation(self.texts, self.url("/phone"), unquote(phone))

    def phone_reply(self, request: Request, phone: str) -> Response:
        phone = unquote(phone)
        message = request.form.get("message", "").strip()
        if message and E164.match(phone):
            self.reply(phone, message[:320])
        return redirect(self.url(f"/phone/{phone}"), 303)

    # -- Python API and controls --------------------------------------------------------------
    def sent_to(self, phone: str) -> list[Text]:
        return self.texts.to(phone)

    def block(self, phone: str, blocked: bool = True) -> None:
        """Every send to ``phone`` fails "sender blocked" (as after a carrier-level STOP)."""
        (self.texts.forced_blocked.add if blocked else self.texts.forced_blocked.discard)(phone)

    def undeliverable(self, phone: str, failed: bool = True) -> None:
        """Sends to ``phone`` are accepted but their delivery report says Failed."""
        (self.texts.undeliverable.add if failed else self.texts.undeliverable.discard)(phone)

    def set_chaos(self, rate: float | None, seed: int = 0, timeout_s: float = 15.0) -> None:
        """``rate`` of sends fail (429 / 503 / accepted-then-too-late); None turns it off."""
        self.chaos = None if not rate else (rate, random.Random(seed), timeout_s)  # noqa: S311 (faults, not keys)

    def c_summary(self, request: Request) -> Response:
        sub = self.events.subscription
        return json_response(
            {
                "connection_string_endpoint": self.endpoint,
                "numbers": self.numbers.numbers(),
                "subscription": sub.to_json() if sub else None,
                "texts": len(self.texts.snapshot()),
                "repeats": self.texts.repeats,
                "dead_letters": len(self.events.dead_letters),
            }
        )

    def c_texts(self, request: Request) -> Response:
        phone = request.args.get("phone")
        texts = self.texts.conversation(phone) if phone else self.texts.snapshot()
        return json_response({"texts": [t.to_json() for t in texts]})

    def c_reply(self, request: Request) -> Response:
        body = read_json(request)
        phone, message = str(body.get("from", "")), str(body.get("message", ""))
        if not E164.match(phone) or not message:
            return json_response({"error": "from (E.164) and message are required"}, 400)
        return json_response(self.reply(phone, message, body.get("to")).to_json())

    def c_subscribe(self, request: Request) -> Response:
        endpoint = str(read_json(request).get("endpoint", ""))
        if not endpoint.startswith(("http://", "https://")):
            return json_response({"error": "endpoint must be an http(s) URL"}, 400)
        self.events_url = endpoint
        self.events.validation_url = self.url("/eventgrid/validate")
        return json_response(self.events.subscribe(endpoint).to_json())

    def c_recipients(self, request: Request) -> Response:
        body = read_json(request)
        phone = str(body.get("phone", ""))
        if "blocked" in body:
            self.block(phone, bool(body["blocked"]))
        if "undeliverable" in body:
            self.undeliverable(phone, bool(body["undeliverable"]))
        return json_response(
            {
                "phone": phone,
                "blocked": phone in self.texts.forced_blocked,
                "undeliverable": phone in self.texts.undeliverable,
            }
        )

    def c_settings(self, request: Request) -> Response:
        body = read_json(request)
        if "operation_seconds" in body:
            self.numbers.seconds = float(body["operation_seconds"])
        if "delivery_seconds" in body:
            self.delivery_seconds = float(body["delivery_seconds"])
        if "fail_next_operation" in body:
            self.numbers.fail_next = str(body["fail_next_operation"]) or None
        if "duplicate_events" in body:
            self.events.duplicate = bool(body["duplicate_events"])
        if "chaos_rate" in body:
            self.set_chaos(float(body["chaos_rate"] or 0), int(body.get("chaos_seed", 0)))
        return json_response(
            {
                "operation_seconds": self.numbers.seconds,
                "delivery_seconds": self.delivery_seconds,
                "duplicate_events": self.events.duplicate,
            }
        )


def _send_problem(body: Any, numbers: NumberStore) -> str | None:
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    sender, recipients, message = body.get("from"), body.get("smsRecipients"), body.get("message")
    if not isinstance(sender, str) or not sender:
        return "from is required."
    if not numbers.owns(sender):
        return "The from number is not a number of this resource."
    if not isinstance(recipients, list) or not recipients:
        return "smsRecipients is required."
    if len(recipients) > MAX_RECIPIENTS:
        return f"Max of {MAX_RECIPIENTS} phone are allowed in the To field."
    for recipient in recipients:
        if not isinstance(recipient, dict) or not E164.match(str(recipient.get("to", ""))):
            return "Invalid To phone number format."
    if not isinstance(message, str) or not message or len(message) > MAX_MESSAGE:
        return f"message is required, at most {MAX_MESSAGE} characters."
    return None


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
