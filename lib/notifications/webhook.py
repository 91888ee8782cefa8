"""`POST /api/graph/notifications`: Microsoft Graph's change and lifecycle notifications.

- **Handshake**: a POST with `?validationToken=` (on creating a subscription, for both its
  notification and lifecycle URLs) is answered 200, `text/plain`, with the token as it came,
  before anything else is looked at: Graph gives up after 10 seconds.
- **clientState**: every notification names its subscription; ours has its own secret, stored
  as a keyed hash, compared in constant time. A notification whose clientState does not match
  (or is missing) is dropped, and a batch with nothing of ours in it is answered 401
  (GRAPH-NOTIFICATION-REFUSED); a notification for a subscription we no longer have (deleted
  while it was in flight) is ignored.
- **validationTokens**: a collection with resource data (`encryptedContent`) must carry a
  token that proves it came from Graph (lib/notifications/validation.py); without one, every
  notification of it is refused. The keys to check with unavailable: 503, Graph retries.
- **Lifecycle** (`lifecycleEvent`): `reauthorizationRequired` renews the subscription,
  `subscriptionRemoved` makes it again, `missed` reconciles the visit from its attendance
  report: each a task on `graph-tasks`, never done here.
- **Meeting call events** carry their resource encrypted to our certificate: decrypted here (a
  local RSA and AES operation, no call out), turned into visit events (lib/notifications/
  roster.py) and enqueued on `visit-events`.
- **Call records** name the record: a `record` task reads it later.

Answered 202 once everything is on a queue (durable before we say yes, so Graph's retry is the
only redelivery we need). Nothing of a notification's body is logged: counts, kinds and the
subscription's visit key only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from lib.notifications.roster import call_event_messages
from lib.notifications.subscriptions import CALL_RECORDS, MEETING, SubscriptionService
from lib.notifications.tasks import GraphTask, GraphTasks
from lib.notifications.validation import ValidationTokens
from lib.privacy import PrivacyKeys
from lib.visits.timeline import VisitEvents
from lib.web.errors import AppError
from lib.web.http import Request, Response

log = logging.getLogger(__name__)

MAX_TOKEN = 4096
MAX_NOTIFICATIONS = 100
_RECORD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
LIFECYCLE_TASKS = {"reauthorizationRequired": "renew", "subscriptionRemoved": "recreate"}


class NotificationReceiver:
    def __init__(
        self,
        subscriptions: SubscriptionService,
        events: VisitEvents,
        tasks: GraphTasks,
        privacy: PrivacyKeys,
        tenant_id: str,
        tokens: ValidationTokens,
    ) -> None:
        self._subscriptions = subscriptions
        self._tokens = tokens
        self._events = events
        self._tasks = tasks
        self._privacy = privacy
        self._tenant_id = tenant_id

    def ready(self) -> None:
        """Before traffic (warmup): the keys that check Graph's validation tokens fetched."""
        self._tokens.ready()

    def receive(self, request: Request) -> Response:
        token = request.query.get("validationToken")
        if token is not None:
            return self._handshake(token)
        body = request.json()
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or len(items) > MAX_NOTIFICATIONS:
            raise AppError("GRAPH-NOTIFICATION-INVALID", "expected {'value': [notifications]}")
        if self._proven(body, items):
            outcomes = [self._checked(item) for item in items]
        else:
            outcomes = ["refused"] * len(items)
        counts = {o: outcomes.count(o) for o in ("accepted", "ignored", "refused", "invalid")}
        log.info("graph notifications", extra=counts)
        if not counts["accepted"] and not counts["ignored"]:
            if counts["refused"]:
                raise AppError("GRAPH-NOTIFICATION-REFUSED", f"{counts['refused']} refused")
            raise AppError("GRAPH-NOTIFICATION-INVALID", f"{counts['invalid']} unreadable")
        return Response(202)

    def _proven(self, body: dict[str, Any], items: list[Any]) -> bool:
        """Whether the collection is Graph's, as far as its validation tokens go: only one with
        resource data carries them (callRecords and lifecycle notifications have none)."""
        rich = any(isinstance(item, dict) and "encryptedContent" in item for item in items)
        return not rich or self._tokens.trusted(body.get("validationTokens"))

    def _checked(self, item: Any) -> str:
        """One notification's outcome; one that cannot be read does not stop the others."""
        if not isinstance(item, dict):
            return "invalid"
        try:
            return self._one(item)
        except AppError as exc:
            if exc.code != "GRAPH-NOTIFICATION-INVALID":
                raise
            log.warning("graph notification unreadable", extra={"detail": exc.detail})
            return "invalid"

    @staticmethod
    def _handshake(token: str) -> Response:
        if not token or len(token) > MAX_TOKEN:
            raise AppError("GRAPH-NOTIFICATION-INVALID", "validationToken empty or too long")
        return Response(200, token.encode(), "text/plain; charset=utf-8")

    def _one(self, item: dict[str, Any]) -> str:
        row = self._subscriptions.get(str(item.get("subscriptionId") or ""))
        if row is None:
            return "ignored"  # deleted while this was in flight, or never ours
        if not self._subscriptions.client_state_matches(row, item.get("clientState")):
            log.warning("graph notification with a wrong clientState", extra={"kind": row.kind})
            return "refused"
        tenant = item.get("tenantId")
        if tenant is not None and str(tenant).lower() != self._tenant_id.lower():
            log.warning("graph notification for another tenant", extra={"kind": row.kind})
            return "refused"
        subscription_id = row.partition_key
        lifecycle = item.get("lifecycleEvent")
        if lifecycle:
            self._lifecycle(str(lifecycle), subscription_id, row.visit_key, row.kind)
        elif row.kind == MEETING and row.visit_key:
            certificate = self._subscriptions.certificate
            if certificate is None:
                raise AppError("GRAPH-NOTIFICATION-INVALID", "no certificate to decrypt with")
            call_event = certificate.decrypt(item.get("encryptedContent"))
            for event in call_event_messages(
                call_event, row.visit_key, self._tenant_id, self._privacy
            ):
                self._events.publish(event)
        elif row.kind == CALL_RECORDS:
            record_id = _record_id(item)
            self._tasks.send(GraphTask(task="record", record_id=record_id))
        return "accepted"

    def _lifecycle(
        self, event: str, subscription_id: str, visit_key: str | None, kind: str
    ) -> None:
        log.info("graph lifecycle notification", extra={"lifecycle": event, "kind": kind})
        if event in LIFECYCLE_TASKS:
            task = LIFECYCLE_TASKS[event]
            self._tasks.send(GraphTask(task=task, subscription_id=subscription_id))  # type: ignore[arg-type]
        elif event == "missed" and visit_key:
            self._tasks.send(GraphTask(task="reconcile", visit_key=visit_key))


def _record_id(item: dict[str, Any]) -> str:
    data = item.get("resourceData")
    record_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(record_id, str) or not record_id:
        resource = str(item.get("resource") or "")
        record_id = resource.rsplit("/", 1)[-1] if "callRecords/" in resource else None
    if not record_id or not _RECORD_ID.match(record_id):
        raise AppError("GRAPH-NOTIFICATION-INVALID", "call record notification without an id")
    return record_id
