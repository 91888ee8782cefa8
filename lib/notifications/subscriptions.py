"""Graph subscriptions: one per visit's meeting, one for the tenant's call records.

Resources (what Graph really offers for these; docs/writeback.md says why these):
- a visit's meeting: `communications/onlineMeetings(joinWebUrl='{url-encoded joinWebUrl}')/
  meetingCallEvents` (beta, app-only `OnlineMeetings.Read.All`): call started, call ended and
  roster updated (who joined, who waits in the lobby, who left). Subscribed **with resource
  data** (`includeResourceData`, our certificate): a roster notification without it says only
  "something changed", and Graph has no call to read a live roster afterwards.
- call records: `communications/callRecords` (v1.0, `CallRecords.Read.All`), `created`; without
  resource data (Graph offers none): the notification names the record, which we then read.

Each subscription has its own `clientState` secret (32 random bytes), sent to Graph once and
stored only as a keyed hash. Lifetime: SUBSCRIPTION_MINUTES (below Graph's limit for both
resources, 4230 minutes for call records, 3 days for meeting call events); the timer renews what
expires within RENEW_AHEAD, at most RENEW_BATCH a run. Every subscription also names our
`lifecycleNotificationUrl` (the same webhook): a subscription made without it cannot gain it.

Storage (no patient data: a subscription id, a visit key, times, a hash):
- `GraphSubscriptions`, PartitionKey the subscription id, RowKey `subscription`: which visit
  (or the tenant's call records), the clientState's keyed hash, expiry.
- `GraphSubscriptions`, PartitionKey a keyed hash of the meeting's join URL, RowKey `meeting`:
  the visit key (a call record names its meeting by join URL).
- `GraphSubscriptions`, PartitionKey `tenant`, RowKey `callRecords`: the tenant subscription's id.
- `Visits`, beside the visit, RowKey `subscription`: its meeting subscription's id, so a second
  `arrived` finds it instead of subscribing again (claimed with create-if-absent first).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from lib.notifications.certificate import NotificationCertificate
from lib.privacy import PrivacyKeys
from lib.storage import ConcurrencyConflict, Entity, StorageUnavailable, TableStore
from lib.teams.graph import GraphClient, seg
from lib.visits.store import VISITS, VisitStore
from lib.web.errors import AppError

log = logging.getLogger(__name__)

SUBSCRIPTIONS = "GraphSubscriptions"
SUBSCRIPTION_MINUTES = 4200  # under 4230 (callRecords) and 4320 (meetingCallEvents)
RENEW_AHEAD = timedelta(hours=12)
RENEW_BATCH = 100  # renewals per timer run: the rest wait for the next run (still hours ahead)
CLAIM_STALE = timedelta(minutes=2)  # a claim without a subscription this old is taken over
MEETING, CALL_RECORDS = "meeting", "callRecords"
CLIENT_STATE = "graph-client-state"
_SUBSCRIPTION_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")


class GraphSubscription(Entity):
    """PartitionKey: Graph's subscription id; RowKey `subscription`."""

    kind: str  # meeting | callRecords
    visit_key: str | None = None
    client_state_hash: str
    expires_at: datetime
    created_at: datetime


class MeetingIndex(Entity):
    """PartitionKey: keyed hash of the join URL; RowKey `meeting`."""

    visit_key: str


class SubscriptionPointer(Entity):
    """`Visits` (PartitionKey the visit key) or `GraphSubscriptions` (`tenant`): which one."""

    subscription_id: str | None = None
    claimed_at: datetime


class SubscriptionService:
    def __init__(
        self,
        graph: GraphClient,
        store: TableStore,
        privacy: PrivacyKeys,
        visits: VisitStore,
        notification_url: str,
        certificate: NotificationCertificate | None,
    ) -> None:
        self.graph = graph
        self._rows = store.table(SUBSCRIPTIONS, GraphSubscription)
        self._index = store.table(SUBSCRIPTIONS, MeetingIndex)
        self._tenant = store.table(SUBSCRIPTIONS, SubscriptionPointer)
        self._pointers = store.table(VISITS, SubscriptionPointer)
        self._privacy = privacy
        self._visits = visits
        self.notification_url = notification_url
        self.certificate = certificate

    # --- reading --------------------------------------------------------------------------------
    def get(self, subscription_id: str) -> GraphSubscription | None:
        if not _SUBSCRIPTION_ID.match(subscription_id or ""):
            return None  # Graph's ids are GUIDs: anything else is no key of ours
        return self._rows.get(subscription_id, "subscription")

    def client_state_matches(self, row: GraphSubscription, given: object) -> bool:
        """Constant time: the keyed hash of what came, against the one stored."""
        import hmac

        text = given if isinstance(given, str) else ""
        return hmac.compare_digest(self._client_state_hash(text), row.client_state_hash)

    def visit_of_join_url(self, join_url: str) -> str | None:
        row = self._index.get(self._join_url_key(join_url), "meeting")
        return row.visit_key if row else None

    # --- a visit's meeting ----------------------------------------------------------------------
    def subscribe(self, visit_key: str) -> str | None:
        """The visit's meeting subscription, made once (None: no meeting yet, or no certificate).

        Every arrival of a visit asks (a burst of launches, the queue's redeliveries): all but
        the one that claims the visit's pointer row stop at a read or two.
        """
        return self._ensure(
            self._pointers, visit_key, "subscription", lambda: self._make_meeting(visit_key)
        )

    def _make_meeting(self, visit_key: str) -> str | None:
        visit = self._visits.get(visit_key)
        if visit is not None and not visit.join_url and visit.opening_since is not None:
            # The arrival was queued alongside the meeting being made: the queue's retry
            # comes back once it is attached.
            raise StorageUnavailable("the visit's meeting is still being made")
        if visit is None or not visit.join_url:
            return None
        index = MeetingIndex(
            partition_key=self._join_url_key(visit.join_url), row_key="meeting", visit_key=visit_key
        )
        self._index.upsert(index)
        self.ensure_call_records()
        if self.certificate is None:
            return None  # meeting events need rich notifications; call records still come
        resource = (
            "communications/onlineMeetings(joinWebUrl='"
            + quote(visit.join_url, safe="")
            + "')/meetingCallEvents"
        )
        return self._create(resource, "updated", MEETING, visit_key, rich=True, version="beta")

    def unsubscribe(self, visit_key: str) -> None:
        """The visit is over: its meeting subscription goes (a later arrival makes a new one)."""
        pointer = self._pointers.get(visit_key, "subscription")
        if pointer is None:
            return
        if pointer.subscription_id:
            self._delete(pointer.subscription_id)
        self._pointers.delete(visit_key, "subscription")

    # --- the tenant's call records --------------------------------------------------------------
    def ensure_call_records(self) -> str | None:
        return self._ensure(
            self._tenant,
            "tenant",
            CALL_RECORDS,
            lambda: self._create("communications/callRecords", "created", CALL_RECORDS, None),
        )

    # --- renewal and lifecycle ------------------------------------------------------------------
    def due(self, now: datetime | None = None, limit: int = RENEW_BATCH) -> Iterator[str]:
        cutoff = (now or datetime.now(UTC)) + RENEW_AHEAD
        rows = self._rows.query(
            "RowKey eq 'subscription' and expires_at le @cutoff", {"cutoff": cutoff}, limit=limit
        )
        return (row.partition_key for row in rows)

    def renew_due(self, now: datetime | None = None, limit: int = RENEW_BATCH) -> int:
        """The timer: renew what expires soon (bounded), and make sure call records come."""
        renewed = 0
        for subscription_id in list(self.due(now, limit)):
            try:
                self.renew(subscription_id)
                renewed += 1
            except AppError as exc:  # one failing renewal does not stop the others
                log.warning("graph subscription renewal failed", extra={"error_code": exc.code})
        self.ensure_call_records()
        return renewed

    def renew(self, subscription_id: str) -> None:
        """Push the expiry out (also the answer to `reauthorizationRequired`); gone: recreate."""
        row = self.get(subscription_id)
        if row is None:
            return
        expires = _expiry()
        response = self.graph.send(
            "PATCH",
            f"/subscriptions/{seg(subscription_id)}",
            json_body={"expirationDateTime": _graph_time(expires)},
            version="beta" if row.kind == MEETING else "v1.0",
        )
        if response.status == 404:
            self.recreate(subscription_id)
            return
        response.raise_for_error()
        self._rows.upsert(row.model_copy(update={"expires_at": expires}))

    def recreate(self, subscription_id: str) -> None:
        """`subscriptionRemoved` (or a renewal Graph no longer knows): subscribe again."""
        row = self.get(subscription_id)
        if row is None:
            return
        self._rows.delete(subscription_id, "subscription")
        if row.kind == CALL_RECORDS:
            self._tenant.delete("tenant", CALL_RECORDS)
            self.ensure_call_records()
        elif row.visit_key:
            self._pointers.delete(row.visit_key, "subscription")
            self.subscribe(row.visit_key)

    # --- internals ------------------------------------------------------------------------------
    def _create(
        self,
        resource: str,
        change_type: str,
        kind: str,
        visit_key: str | None,
        *,
        rich: bool = False,
        version: str = "v1.0",
    ) -> str:
        secret = secrets.token_urlsafe(32)
        expires = _expiry()
        body: dict[str, object] = {
            "changeType": change_type,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.notification_url,
            "resource": resource,
            "expirationDateTime": _graph_time(expires),
            "clientState": secret,
        }
        if rich and self.certificate is not None:
            body |= {
                "includeResourceData": True,
                "encryptionCertificate": self.certificate.certificate_base64,
                "encryptionCertificateId": self.certificate.certificate_id,
            }
        made = self.graph.request("POST", "/subscriptions", json_body=body, version=version).json()
        subscription_id = made.get("id")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise AppError("GRAPH-FAILED", "unexpected-subscription")
        self._rows.upsert(
            GraphSubscription(
                partition_key=subscription_id,
                row_key="subscription",
                kind=kind,
                visit_key=visit_key,
                client_state_hash=self._client_state_hash(secret),
                expires_at=expires,
                created_at=datetime.now(UTC),
            )
        )
        log.info("graph subscription created", extra={"kind": kind, "visit": visit_key})
        return subscription_id

    def _delete(self, subscription_id: str) -> None:
        row = self.get(subscription_id)
        version = "beta" if row is None or row.kind == MEETING else "v1.0"
        response = self.graph.send(
            "DELETE", f"/subscriptions/{seg(subscription_id)}", version=version
        )
        if response.status not in (404,):
            response.raise_for_error()
        self._rows.delete(subscription_id, "subscription")

    def _ensure(
        self, table, partition: str, row_key: str, create: Callable[[], str | None]
    ) -> str | None:
        """The subscription a pointer row names, made (once, by whoever claims it) if none."""
        pointer = table.get(partition, row_key)
        if pointer and pointer.subscription_id and self.get(pointer.subscription_id):
            return pointer.subscription_id
        pointer = self._claim(table, partition, row_key)
        if pointer is None:
            return None  # another worker is making it right now
        if pointer.subscription_id and self.get(pointer.subscription_id):
            return pointer.subscription_id
        try:
            made = create()
        except Exception:
            # Let the queue's retry (or another arrival) claim it again at once.
            table.delete(partition, row_key)
            raise
        if made is None:  # nothing to subscribe to yet: the next arrival looks again
            table.delete(partition, row_key)
            return None
        table.upsert(pointer.model_copy(update={"subscription_id": made}))
        return made

    def _claim(self, table, partition: str, row_key: str):
        """The pointer row this worker may fill, or None while another one fills it."""
        now = datetime.now(UTC)
        mine = SubscriptionPointer(partition_key=partition, row_key=row_key, claimed_at=now)
        created = table.create(mine)
        if created.created:
            return created.entity
        current = created.entity
        if current.subscription_id or now - current.claimed_at > CLAIM_STALE:
            try:
                return table.update(current.model_copy(update={"claimed_at": now}))
            except ConcurrencyConflict:
                return None
        return None

    def _client_state_hash(self, secret: str) -> str:
        return self._privacy.keyed_hash(secret, purpose=CLIENT_STATE)

    def _join_url_key(self, join_url: str) -> str:
        return self._privacy.keyed_hash(join_url, purpose="join-url")


def _expiry() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=SUBSCRIPTION_MINUTES)


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
