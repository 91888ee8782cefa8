"""`POST /api/sms/events`: Communication Services' Event Grid events (Event Grid schema).

- The shared secret (SMS_EVENTS_SECRET) comes in the subscription's URL (`?secret=`) and is
  compared in constant time, before anything in the body is read.
- The subscription handshake: a `Microsoft.EventGrid.SubscriptionValidationEvent` is answered
  with `{"validationResponse": code}`.
- Events arrive at least once, in batches: each is handled once, by its id (a keyed hash of it
  is kept in `SmsEvents`).
- `SMSReceived`: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT opt the number out (the list is
  keyed by a keyed hash of the number); START, UNSTOP opt it back in; HELP is answered with the
  organization's help text from the number texted.
- `SMSDeliveryReportReceived`: the ledger row named by the report's tag becomes `delivered` or
  `undelivered` (with the reason); an `unknown` one so learns that it did go.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from lib.privacy import PrivacyKeys
from lib.sms import texts
from lib.sms.config import SmsConfig
from lib.sms.ledger import Ledger
from lib.sms.sender import SmsSender
from lib.sms.sending import OptOuts
from lib.storage import ConcurrencyConflict, Entity, TableStore
from lib.web.errors import AppError
from lib.web.http import Request, Response

SMS_EVENTS_TABLE = "SmsEvents"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
RECEIVED = "Microsoft.Communication.SMSReceived"
DELIVERY = "Microsoft.Communication.SMSDeliveryReportReceived"
STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START = frozenset({"START", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})


class SeenEvent(Entity):
    at: datetime
    kind: str


class SmsEvents:
    def __init__(
        self,
        store: TableStore,
        privacy: PrivacyKeys,
        secret: str | None,
        optouts: OptOuts,
        ledger: Ledger,
        config: SmsConfig,
        sender: SmsSender,
    ) -> None:
        self._seen = store.table(SMS_EVENTS_TABLE, SeenEvent)
        self._privacy, self._secret, self._optouts = privacy, secret, optouts
        self._ledger, self._config, self._sender = ledger, config, sender

    def receive(self, request: Request) -> Response:
        given = request.query.get("secret", "")
        if not self._secret or not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise AppError("SMS-EVENTS-REFUSED")
        try:
            batch = json.loads(request.body or b"[]")
        except ValueError:
            raise AppError("REQ-BAD-JSON") from None
        if not isinstance(batch, list):
            raise AppError("REQ-VALIDATION", "Event Grid posts a JSON array of events.")
        for event in batch:
            if isinstance(event, dict) and event.get("eventType") == VALIDATION:
                code = (event.get("data") or {}).get("validationCode")
                return Response.json({"validationResponse": code})
        for event in batch:
            if isinstance(event, dict) and self._first_time(event):
                self._handle(event)
        return Response(200)

    def _first_time(self, event: dict[str, Any]) -> bool:
        key = self._privacy.keyed_hash(str(event.get("id")), purpose="sms-event")
        row = SeenEvent(
            partition_key=key,
            row_key="event",
            at=datetime.now(UTC),
            kind=str(event.get("eventType"))[:80],
        )
        return self._seen.create(row).created

    def _handle(self, event: dict[str, Any]) -> None:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if event.get("eventType") == RECEIVED:
            self._received(
                str(data.get("From", "")), str(data.get("To", "")), str(data.get("Message", ""))
            )
        elif event.get("eventType") == DELIVERY:
            self._delivered(
                str(data.get("Tag", "")),
                str(data.get("DeliveryStatus", "")),
                str(data.get("DeliveryStatusDetails", "")),
            )

    def _received(self, phone: str, our_number: str, message: str) -> None:
        word = message.strip().upper()
        if not phone:
            return
        if word in STOP:
            self._optouts.add(phone, "stop")
        elif word in START:
            self._optouts.remove(phone)
        elif word in HELP and our_number:
            settings = self._settings_for(our_number)
            if settings is not None:
                text = texts.render(
                    "help",
                    settings.language,
                    settings.organization_name or "",
                    None,
                    settings.time_zone,
                )
                self._sender.send(our_number, phone, text, "help")

    def _settings_for(self, number: str) -> Any:
        row = self._config.number(number)
        if row is None or not row.endpoints:
            return None
        return self._config.settings(row.endpoints[0])

    def _delivered(self, tag: str, status: str, details: str) -> None:
        visit_key, _, text_id = tag.partition("~")
        if not visit_key or not text_id:
            return
        row = self._ledger.rows.get(visit_key, text_id)
        if row is None or row.state not in ("sent", "unknown", "sending"):
            return
        state = "delivered" if status.lower() == "delivered" else "undelivered"
        update = {"state": state, "reason": details[:200], "updated_at": datetime.now(UTC)}
        # A newer report, or the sender recording its own outcome, may have moved it: theirs stands.
        with contextlib.suppress(ConcurrencyConflict):
            self._ledger.rows.update(row.model_copy(update=update))
