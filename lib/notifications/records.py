"""Call records: after a call, Graph's record of it, as the visit's quality figures.

On a `callRecords` notification the `record` task reads the record app-only
(`CallRecords.Read.All`): `GET /communications/callRecords/{id}?$expand=sessions($expand=
segments)`, following `sessions@odata.nextLink` pages (a long call has many sessions). The
record names its meeting by `joinWebUrl`; a record of a call that is not one of our visits
(any other Teams call in the tenant) is dropped without a trace. Ours: the figures per stream
(`lib/visits/quality.py`, nothing about the people) go in the visit's `quality` row, and a
`measured` event (id from the record's id and version: Graph may update a record) tells the
reports to look again. The call is over, so the visit's meeting subscription goes and the
attendance report is read (a missed `callEnded` does not keep the visit open).
"""

from __future__ import annotations

import logging
from typing import Any

from lib.notifications.roster import event_id, graph_time
from lib.notifications.subscriptions import SubscriptionService
from lib.notifications.tasks import GraphTask, GraphTasks
from lib.privacy import PrivacyKeys
from lib.teams.graph import GraphClient, seg
from lib.visits.events import VisitEventMessage
from lib.visits.quality import CallQualityStore, figures_from_call_record
from lib.visits.timeline import VisitEvents

log = logging.getLogger(__name__)

MAX_PAGES = 20  # sessions pages followed per record


class CallRecords:
    def __init__(
        self,
        graph: GraphClient,
        subscriptions: SubscriptionService,
        quality: CallQualityStore,
        events: VisitEvents,
        tasks: GraphTasks,
        privacy: PrivacyKeys,
    ) -> None:
        self._graph = graph
        self._subscriptions = subscriptions
        self._quality = quality
        self._events = events
        self._tasks = tasks
        self._privacy = privacy

    def handle(self, record_id: str) -> str | None:
        """Store the record's figures for its visit; the visit key, or None when not ours."""
        record = self.read(record_id)
        if record is None:
            return None
        join_url = record.get("joinWebUrl")
        visit_key = (
            self._subscriptions.visit_of_join_url(join_url) if isinstance(join_url, str) else None
        )
        if visit_key is None:
            return None
        ended = graph_time(record.get("endDateTime") or record.get("lastModifiedDateTime"))
        self._quality.put(visit_key, record_id, ended, figures_from_call_record(record))
        version = record.get("version", 1)
        self._events.publish(
            VisitEventMessage(
                event_id=event_id(self._privacy, "graph", "measured", record_id, version),
                visit_key=visit_key,
                kind="measured",
                role="visit",
                at=ended,
                source="graph",
            )
        )
        self._tasks.send(GraphTask(task="unsubscribe", visit_key=visit_key))
        self._tasks.send(GraphTask(task="reconcile", visit_key=visit_key))
        log.info("call record stored", extra={"visit": visit_key})
        return visit_key

    def read(self, record_id: str) -> dict[str, Any] | None:
        response = self._graph.send(
            "GET",
            f"/communications/callRecords/{seg(record_id)}",
            params={"$expand": "sessions($expand=segments)"},
        )
        if response.status == 404:
            return None  # not (or no longer) there: nothing to measure
        record = response.raise_for_error().json()
        sessions = list(record.get("sessions") or [])
        next_link = record.get("sessions@odata.nextLink")
        for _ in range(MAX_PAGES):
            if not isinstance(next_link, str) or not next_link:
                break
            page = self._graph.request("GET", _relative(next_link, self._graph.graph_base)).json()
            sessions.extend(page.get("value") or [])
            next_link = page.get("@odata.nextLink")
        return {**record, "sessions": sessions}


def _relative(link: str, graph_base: str) -> str:
    """A nextLink (absolute, on Graph's own host) as the path `GraphClient` takes."""
    from urllib.parse import urlsplit

    parts, base = urlsplit(link), urlsplit(graph_base)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
        from lib.web.errors import AppError

        raise AppError("GRAPH-FAILED", "nextLink-off-graph")
    path = parts.path[len(base.path) :] if parts.path.startswith(base.path) else parts.path
    path = path.removeprefix("/v1.0")
    return f"{path}?{parts.query}" if parts.query else path
