"""What one visit event costs in storage round trips, with every listener the app wires
(Graph follower, write-back planner, report projection): counted at the SDK, request by request.

One read of the visit's partition stands for its row, its state, its write-back row, its report
pointer and its call quality, shared by all listeners; before, each listener read the rows it
needed, one round trip each (15 table requests an event; now 9)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

import lib.bootstrap
from dev.stack import settings_env
from lib.settings import load_settings
from lib.storage import TableStore
from lib.visits.events import VisitEventMessage
from lib.visits.store import Visit

NOW = datetime.now(UTC)


class Requests:
    """Table requests seen by the SDK's raw request hook while `on`, by (method, what)."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.on = False

    def __call__(self, request) -> None:
        if self.on:
            r = request.http_request
            last = r.url.split("?")[0].rsplit("/", 1)[-1]
            what = last.split("(")[0] + ("()" if last.endswith("()") else "(row)" * ("(" in last))
            self.seen[(r.method, what.removeprefix(PREFIX))] += 1

    def during(self, action) -> Counter[tuple[str, str]]:
        self.seen.clear()
        self.on = True
        try:
            action()
        finally:
            self.on = False
        return Counter(self.seen)


PREFIX = "k" + uuid.uuid4().hex[:10]


@pytest.fixture
def rig(storage_connection_string):
    counted = Requests()
    settings = load_settings(settings_env(AzureWebJobsStorage=storage_connection_string))
    service = TableServiceClient.from_connection_string(
        storage_connection_string, raw_request_hook=counted
    )
    svc = lib.bootstrap.build(settings, TableStore(service, PREFIX))
    first = visit(svc)  # tables made and per-process caches filled, as on a warm instance
    svc.timeline.apply(event(first, "arrived", 1))
    return svc, counted


def visit(svc) -> str:
    key = "vk" + uuid.uuid4().hex
    svc.visits.claim(
        Visit(partition_key=key, row_key="visit", endpoint_id="gone", organizer_oid="oid",
              start=NOW, end=NOW + timedelta(minutes=30), created_at=NOW,
              created_by_role="provider")
    )  # fmt: skip
    return key


def event(key: str, kind: str, n: int) -> VisitEventMessage:
    return VisitEventMessage(event_id=f"e{n:015d}", visit_key=key, kind=kind, role="patient",
                             at=NOW + timedelta(seconds=n), source="graph")  # fmt: skip


def test_an_event_reads_its_visits_partition_twice_and_no_row_of_it_alone(rig):
    svc, counted = rig
    key = visit(svc)
    for n, kind in enumerate(("arrived", "joined", "joined"), 1):
        again = kind == "joined" and n == 3  # the queue's redelivery of the same event
        seen = counted.during(lambda: svc.timeline.apply(event(key, kind, 2 if again else n)))
        # The timeline's read (shared by the listeners) and the projection's check after its write.
        assert seen[("GET", "Visits()")] == 2, seen
        assert seen[("GET", "Visits(row)")] == 0, seen  # no visit, state, pointer or row read alone
        assert seen[("GET", "VisitEvents()")] == 1, seen  # the fold reads the events once
        assert sum(seen.values()) <= 9, seen
