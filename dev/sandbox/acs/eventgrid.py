"""Event Grid as Communication Services uses it: a webhook subscription (Event Grid schema) that
must pass the validation handshake, then events pushed in batches, at least once, with retries.

- Subscribing POSTs a ``Microsoft.EventGrid.SubscriptionValidationEvent`` (header
  ``aeg-event-type: SubscriptionValidation``); the subscription is active once the endpoint
  answers 2xx with ``{"validationResponse": <validationCode>}`` or GETs the ``validationUrl``.
- Events then go out as JSON arrays with ``aeg-event-type: Notification`` and
  ``aeg-delivery-count``; a non-2xx answer or a lost connection is retried with backoff (Event
  Grid keeps trying for 24 hours; the sandbox's schedule is seconds, ``ACS_EVENT_RETRIES``), then
  the event is dead-lettered (kept in ``dead_letters``). ``duplicate=True`` delivers each event
  twice, as at-least-once allows, so handlers can prove they dedupe by event id.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from dev.sandbox.outbox import Outbox

log = logging.getLogger("dev.sandbox.acs")

TOPIC = (
    "/subscriptions/00000000-0000-4000-8000-00000000ac50/resourceGroups/evc-sandbox/providers/"
    "Microsoft.Communication/CommunicationServices/evc-sandbox-acs"
)
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


def event(event_type: str, subject: str, data: dict[str, Any], event_id: str | None = None):
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": TOPIC,
        "subject": subject,
        "data": data,
        "eventType": event_type,
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }


@dataclass
class Subscription:
    endpoint: str
    name: str = "evc-sms-events"
    validation_code: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "pending"  # pending | active | failed
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": _redact(self.endpoint),
            "name": self.name,
            "state": self.state,
            "detail": self.detail,
        }


@dataclass
class Delivery:
    event_id: str
    event_type: str
    attempt: int
    status: int  # HTTP status, 0 when the connection failed
    at: float


class EventGrid:
    """One subscription (the connector's webhook) and a delivery thread."""

    def __init__(self, retries: list[float], validation_url: str = "", ca_file: str = "") -> None:
        self.retries = retries
        # The app's certificate is from the sandbox's CA (dev/stack.py app_certificate).
        self.ca_file = ca_file
        self.validation_url = validation_url  # set by the stand-in once its origin is known
        self.subscription: Subscription | None = None
        self.deliveries: list[Delivery] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.duplicate = False
        # (due, attempt, payload), drained by _run on its own thread
        self._outbox = Outbox("sandbox:acs:eventgrid", self._run)

    # -- subscribing ----------------------------------------------------------------------------
    def subscribe(self, endpoint: str, name: str = "evc-sms-events") -> Subscription:
        """Create (or replace) the subscription and run the handshake now, as the portal does."""
        sub = Subscription(endpoint, name)
        self.subscription = sub
        body = [
            event(
                VALIDATION,
                "",
                {
                    "validationCode": sub.validation_code,
                    "validationUrl": f"{self.validation_url}?id={sub.validation_code}",
                },
            )
        ]
        try:
            answer = _session(self.ca_file).post(
                endpoint,
                json=body,
                timeout=30,
                headers={
                    "aeg-event-type": "SubscriptionValidation",
                    "aeg-subscription-name": name.upper(),
                },
            )
        except requests.RequestException as exc:
            sub.state, sub.detail = (
                "failed",
                f"endpoint unreachable: {type(exc).__name__} {exc}"[:300],
            )
            return sub
        echoed = _json(answer).get("validationResponse") if answer.ok else None
        if echoed == sub.validation_code:
            sub.state, sub.detail = "active", "validationResponse echoed"
        elif sub.state == "pending":  # the validation URL may have been fetched meanwhile
            sub.state = "failed"
            sub.detail = f"handshake answer {answer.status_code} without the validationResponse"
        return sub

    def validate_by_url(self, code: str) -> bool:
        sub = self.subscription
        if sub is None or code != sub.validation_code:
            return False
        sub.state, sub.detail = "active", "validationUrl fetched"
        return True

    # -- publishing -----------------------------------------------------------------------------
    def publish(self, item: dict[str, Any], delay: float = 0.0) -> None:
        """Queue one event for delivery after ``delay`` seconds (a delivery report's latency)."""
        sub = self.subscription
        if sub is None or sub.state != "active":
            return  # no subscription: Event Grid drops the event, as the real one does
        for _ in range(2 if self.duplicate else 1):
            self._outbox.put((time.monotonic() + delay, 0, item))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once everything published was delivered or dead-lettered (for tests)."""
        return self._outbox.wait_idle(timeout)

    def _run(self, outbox: Outbox) -> None:
        while (item := outbox.get()) is not None:
            due, attempt, payload = item
            wait = due - time.monotonic()
            if wait > 0:
                # Not due yet: put it back and look again soon (keeps later events moving).
                outbox.put(item, new=False)
                time.sleep(min(wait, 0.05))
                continue
            self._deliver(payload, attempt)

    def _deliver(self, payload: dict[str, Any], attempt: int) -> None:
        sub = self.subscription
        status = 0
        if sub is not None:
            try:
                status = (
                    _session(self.ca_file)
                    .post(
                        sub.endpoint,
                        json=[payload],
                        timeout=30,
                        headers={
                            "aeg-event-type": "Notification",
                            "aeg-subscription-name": sub.name.upper(),
                            "aeg-delivery-count": str(attempt),
                            "aeg-data-version": "1.0",
                            "aeg-metadata-version": "1",
                        },
                    )
                    .status_code
                )
            except requests.RequestException:
                status = 0
        self.deliveries.append(
            Delivery(payload["id"], payload["eventType"], attempt, status, time.time())
        )
        if 200 <= status < 300:
            return self._outbox.finished()
        if attempt < len(self.retries):
            retry = (time.monotonic() + self.retries[attempt], attempt + 1, payload)
            return self._outbox.put(retry, new=False)
        self.dead_letters.append(payload)
        log.warning("event %s dead-lettered after %d attempts", payload["id"], attempt + 1)
        return self._outbox.finished()

    def reset(self) -> None:
        self.deliveries.clear()
        self.dead_letters.clear()
        self.duplicate = False

    def stop(self) -> None:
        self._outbox.stop()


def _session(ca_file: str = "") -> requests.Session:
    session = requests.Session()
    # The connector runs on https with the sandbox's CA locally (or a CA named in the env).
    # No trust_env: requests would let REQUESTS_CA_BUNDLE (another sandbox's, in a test run)
    # override the session's own verify.
    session.trust_env = False
    session.verify = ca_file or os.environ.get("REQUESTS_CA_BUNDLE") or True
    return session


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _redact(url: str) -> str:
    """The webhook URL without its query (it carries the shared secret)."""
    return url.split("?", 1)[0] + ("?…" if "?" in url else "")
