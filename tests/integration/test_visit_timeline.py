"""Visit events on Azurite: applied once, in order, under ETag races; queued as the host reads."""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from lib.storage import ConcurrencyConflict, QueueSender, StorageUnavailable, TableStore
from lib.visits.events import IN_VISIT, JOINING, LEFT, VisitEventMessage, VisitState, fold
from lib.visits.store import VisitStore
from lib.visits.timeline import Applied, VisitEvents, VisitTimeline

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def visits(storage_connection_string) -> VisitStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    return VisitStore(TableStore(service, prefix="v" + uuid.uuid4().hex[:10]))


def ev(key: str, n: int, kind: str, role: str, seconds: float) -> VisitEventMessage:
    return VisitEventMessage(
        event_id=f"e{n:06d}-{key[:6]}",
        visit_key=key,
        kind=kind,  # type: ignore[arg-type]
        role=role,  # type: ignore[arg-type]
        at=T0 + timedelta(seconds=seconds),
        source="graph",
    )


def new_key() -> str:
    return "vk" + uuid.uuid4().hex


def test_the_same_event_twice_is_one_row_and_one_fold(visits):
    timeline, key = VisitTimeline(visits), new_key()
    event = ev(key, 1, "arrived", "patient", 0)
    first, second = timeline.apply(event), timeline.apply(event)
    assert first == second and first.patient == JOINING and first.events == 1
    assert len(visits.events(key)) == 1


def test_a_late_event_lands_in_its_place(visits):
    timeline, key = VisitTimeline(visits), new_key()
    timeline.apply(ev(key, 2, "left", "patient", 60))
    state = timeline.apply(ev(key, 1, "joined", "patient", 30))  # heard late, happened earlier
    assert state.patient == LEFT and state.admitted_at == T0 + timedelta(seconds=30)
    stored = visits.state(key)
    assert stored is not None and stored.patient == LEFT


def test_concurrent_events_of_one_visit_all_count(visits):
    """Sixteen workers apply sixteen events of one visit at once: ETag losers fold again."""
    timeline, key = VisitTimeline(visits), new_key()
    events = [ev(key, n, "joined" if n % 2 else "arrived", "provider", n) for n in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(timeline.apply, events))
    stored = visits.state(key)
    assert stored is not None and stored.events == 16 and stored.provider == IN_VISIT
    assert stored.last_at == T0 + timedelta(seconds=15)


def test_a_stale_etag_is_refused(visits):
    timeline, key = VisitTimeline(visits), new_key()
    timeline.apply(ev(key, 1, "arrived", "patient", 0))
    row = visits.state(key)
    assert row is not None
    timeline.apply(ev(key, 2, "lobby", "patient", 5))
    with pytest.raises(ConcurrencyConflict):
        visits.save_state(key, row, row.etag)


def test_a_worker_that_died_after_the_row_is_made_good_by_the_redelivery(visits):
    timeline, key = VisitTimeline(visits), new_key()
    event = ev(key, 1, "lobby", "patient", 0)
    assert visits.record(event)  # the row written, then the worker died before the state
    assert visits.state(key) is None
    assert timeline.apply(event).patient == "waiting in lobby"  # the queue's second delivery


def test_listeners_hear_every_delivery_and_a_failing_one_gives_it_back(visits):
    heard: list[tuple[str, str]] = []
    failing = {"on": True}

    def listener(applied: Applied) -> None:
        heard.append((applied.event.event_id, applied.state.patient))
        if failing["on"]:
            raise StorageUnavailable("listener's store is down")

    timeline, key = VisitTimeline(visits, [listener]), new_key()
    event = ev(key, 1, "lobby", "patient", 0)
    with pytest.raises(StorageUnavailable):
        timeline.apply(event)  # the state is written, the listener failed: the queue retries
    failing["on"] = False
    timeline.apply(event)  # the redelivery folds nothing new and calls the listener again
    assert heard == [(event.event_id, "waiting in lobby")] * 2
    assert len(visits.events(key)) == 1


def test_events_go_on_the_queue_as_the_host_reads_them(storage_connection_string):
    name = "ve" + uuid.uuid4().hex[:10]
    service = QueueServiceClient.from_connection_string(storage_connection_string)
    sender = VisitEvents(lambda: QueueSender(service, name))
    sent = sender.emit(new_key(), "arrived", "patient", "launch")
    raw = QueueClient.from_connection_string(storage_connection_string, name)
    (message,) = list(raw.receive_messages())
    assert VisitEventMessage.from_text(base64.b64decode(message.content)) == sent
    # every field of the model; an optional one left unset (participant; traceparent, with
    # telemetry off) is left off the wire
    wire = set(json.loads(base64.b64decode(message.content)))
    assert wire == set(VisitEventMessage.model_fields) - {"participant", "traceparent"}


class Flaky:
    """A VisitStore whose every call fails 30% of the time, before or after doing its work (a
    storage error, or an answer lost on the way back): what a worker meets on a bad day."""

    def __init__(self, visits: VisitStore, seed: int) -> None:
        self._visits, self._random = visits, random.Random(seed)
        self._lock = threading.Lock()

    def _roll(self) -> float:
        with self._lock:
            return self._random.random()

    def __getattr__(self, name: str):
        real = getattr(self._visits, name)

        def call(*args, **kwargs):
            roll = self._roll()
            if roll < 0.15:
                raise StorageUnavailable("before")
            result = real(*args, **kwargs)
            if roll < 0.30:
                raise StorageUnavailable("after: done, but the answer was lost")
            return result

        return call


def test_at_least_once_delivery_through_failures_gives_the_fold_of_every_event(visits):
    """Two visits' events, shuffled, some delivered twice, through four workers that fail 30% of
    their storage calls; the queue retries each message until it is applied. Every event's
    effect is there once, and the state is the fold of all of them."""
    keys = [new_key(), new_key()]
    kinds = ["arrived", "lobby", "joined", "left"]
    events = [
        ev(key, n, kinds[n % 4], ("patient", "provider")[n // 4 % 2], n * 7 % 61)
        for key in keys
        for n in range(24)
    ]
    rng = random.Random(7)
    deliveries = events + rng.sample(events, 10)  # at-least-once: some come twice
    rng.shuffle(deliveries)
    timeline = VisitTimeline(Flaky(visits, seed=11))  # type: ignore[arg-type]
    attempts = Counter()

    def deliver(event: VisitEventMessage) -> None:
        while True:  # the queue: visible again after a failure, until it is applied
            attempts[event.event_id] += 1
            try:
                timeline.apply(event)
                return
            except StorageUnavailable:
                continue

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(deliver, deliveries))
    assert sum(attempts.values()) > len(deliveries)  # failures did happen
    for key in keys:
        mine = [e for e in events if e.visit_key == key]
        assert len(visits.events(key)) == len(mine)  # each once
        stored = visits.state(key)
        assert stored is not None
        assert VisitState.model_validate(stored.model_dump()) == fold(mine)
