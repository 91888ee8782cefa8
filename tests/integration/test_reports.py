"""The reports against a hand-checked set of visits, on Azurite, through the real event path:
events applied by the timeline, the projection listening, the rows read back per day.

The clinic is in America/Chicago. Every figure below was worked out by hand:
- `plain`: patient arrives 14:58, in at 15:02 (4 min wait), out 15:22; clinician in 15:00-15:25
  -> start 15:02Z, 23 min, 2 at once, completed; 2 texts sent (one failed is not counted);
- `crowd`: two clinicians and the patient overlap 16:05-16:10 -> 3 at once, 16:01-16:30 = 29 min;
- `noshow`: the clinician waits 17:00-17:15, the call ends; the patient never comes;
- `midnight`: both in 05:50Z on 3 March = 23:50 on 2 March in Chicago -> the 2 March partition;
- `dst`: both in 07:30Z on 8 March (01:30 CST), out 08:30Z (03:30 CDT): one hour, not two.
"""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from lib.reports.projection import ReportProjection
from lib.reports.ranges import Position, Range
from lib.reports.rows import REPORTS, VisitReport, partition
from lib.reports.service import ReportRows, Reports
from lib.reports.verdicts import ThresholdFields
from lib.sms.ledger import Ledger, LedgerRow
from lib.storage import TableStore
from lib.visits.events import VisitEventMessage
from lib.visits.quality import CallQualityStore, StreamFigures
from lib.visits.store import Visit, VisitStore
from lib.visits.timeline import VisitTimeline

ZONE, EP = "America/Chicago", "clinic-a"
OID = "11111111-2222-3333-4444-555555555555"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class World:
    def __init__(self, store: TableStore) -> None:
        self.store = store
        self.visits = VisitStore(store)
        self.quality = CallQualityStore(store)
        self.ledger = Ledger(store)
        self.projection = ReportProjection(
            store, self.visits, self.ledger, lambda e: ZONE, now=lambda: NOW
        )
        self.timeline = VisitTimeline(self.visits, listeners=[self.projection])
        self.rows = ReportRows(store)
        self.reports = Reports(
            self.rows, ThresholdFields, lambda oid: ("Dr. Casey Diaz", "casey@example.org"),
            lambda key: f"Appointment/{key[:6]}", now=lambda: NOW,
        )  # fmt: skip
        self.ids = itertools.count(1)  # next() is atomic: events may be sent from threads

    def visit(self, name: str, start: str, department: str = "Cardiology") -> str:
        key = f"vk{name}{uuid.uuid4().hex[:8]}"
        self.visits.claim(
            Visit(
                partition_key=key, row_key="visit", endpoint_id=EP, organizer_oid=OID,
                start=t(start), end=t(start) + timedelta(minutes=30), department=department,
                created_at=t(start) - timedelta(days=1), created_by_role="provider",
            )
        )  # fmt: skip
        return key

    def event(self, key: str, kind: str, role: str, at: str, who: str | None = None) -> None:
        n = next(self.ids)
        self.timeline.apply(
            VisitEventMessage(
                event_id=f"ev{n:06d}x", visit_key=key, kind=kind, role=role, at=t(at),
                source="graph", participant=who,
            )
        )  # fmt: skip


@pytest.fixture(scope="module")
def world(storage_connection_string) -> World:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    w = World(TableStore(service, prefix="r" + uuid.uuid4().hex[:10]))
    plain = w.visit("plain", "2026-03-02T15:00:00")
    for kind, role, at in [
        ("arrived", "patient", "2026-03-02T14:58:00"), ("lobby", "patient", "2026-03-02T14:58:30"),
        ("joined", "provider", "2026-03-02T15:00:00"), ("joined", "patient", "2026-03-02T15:02:00"),
        ("left", "patient", "2026-03-02T15:22:00"), ("left", "provider", "2026-03-02T15:25:00"),
    ]:  # fmt: skip
        w.event(plain, kind, role, at)
    for text_id, state in [("booked-v1", "sent"), ("reminder-15-v1", "delivered"),
                           ("reminder-1440-v1", "failed")]:  # fmt: skip
        w.ledger.rows.upsert(
            LedgerRow(partition_key=plain, row_key=text_id, endpoint_id=EP, kind="reminder",
                      version=1, state=state, due_at=t("2026-03-01T15:00:00"))
        )  # fmt: skip
    good = StreamFigures(media="main-audio", direction="callerToCallee", avg_packet_loss=0.01,
                         max_packet_loss=0.05, avg_jitter_ms=12, max_jitter_ms=40,
                         avg_round_trip_ms=80, max_round_trip_ms=300)  # fmt: skip
    w.quality.put(plain, "rec-1", t("2026-03-02T15:25:00"), [good])
    w.event(plain, "measured", "visit", "2026-03-02T15:40:00")

    crowd = w.visit("crowd", "2026-03-02T16:00:00", "Dermatology")
    for kind, role, at, who in [
        ("joined", "provider", "2026-03-02T16:00:00", "a"),
        ("arrived", "patient", "2026-03-02T16:00:30", None),
        ("joined", "patient", "2026-03-02T16:01:00", None),
        ("joined", "provider", "2026-03-02T16:05:00", "b"),
        ("left", "provider", "2026-03-02T16:10:00", "a"),
        ("left", "patient", "2026-03-02T16:20:00", None),
        ("left", "provider", "2026-03-02T16:30:00", "b"),
    ]:
        w.event(crowd, kind, role, at, who)
    jittery = good.model_copy(update={"avg_jitter_ms": 45.0, "direction": "calleeToCaller"})
    w.quality.put(crowd, "rec-2", t("2026-03-02T16:30:00"), [good, jittery])
    w.event(crowd, "measured", "visit", "2026-03-02T16:45:00")

    noshow = w.visit("noshow", "2026-03-02T17:00:00")
    w.event(noshow, "joined", "provider", "2026-03-02T17:00:00")
    w.event(noshow, "left", "provider", "2026-03-02T17:15:00")
    w.event(noshow, "ended", "visit", "2026-03-02T17:15:00")

    midnight = w.visit("midnight", "2026-03-03T05:45:00")
    for kind, role, at in [
        ("joined", "provider", "2026-03-03T05:45:00"), ("joined", "patient", "2026-03-03T05:50:00"),
        ("ended", "visit", "2026-03-03T06:20:00"),
    ]:  # fmt: skip
        w.event(midnight, kind, role, at)

    dst = w.visit("dst", "2026-03-08T07:30:00")
    for kind, role, at in [
        ("joined", "patient", "2026-03-08T07:29:00"), ("joined", "provider", "2026-03-08T07:30:00"),
        ("left", "patient", "2026-03-08T08:30:00"), ("left", "provider", "2026-03-08T08:30:00"),
    ]:  # fmt: skip
        w.event(dst, kind, role, at)
    w.keys = {"plain": plain, "crowd": crowd, "noshow": noshow, "midnight": midnight, "dst": dst}
    return w


MARCH = Range(date(2026, 3, 1), date(2026, 3, 9))


def views(world: World, admin: bool = False) -> dict[str, dict]:
    found = {v["visit"]: v for v in world.reports.views(MARCH, admin=admin)}
    return {name: found[key] for name, key in world.keys.items() if key in found}


def test_a_plain_visit(world):
    v = views(world)["plain"]
    assert (v["day"], v["start_utc"], v["end_utc"]) == (
        "2026-03-02", "2026-03-02T15:02:00Z", "2026-03-02T15:25:00Z",
    )  # fmt: skip
    assert v["start_local"] == "2026-03-02T09:02:00-06:00"
    assert (v["duration_seconds"], v["lobby_wait_seconds"], v["attendees"]) == (1380, 240, 2)
    assert (v["status"], v["texts_sent"], v["department"]) == ("completed", 2, "Cardiology")
    assert (v["organizer_oid"], v["organizer_name"]) == (OID, "Dr. Casey Diaz")
    assert v["call_quality"] == "good" and v["poor_streams"] == []
    assert (v["jitter_ms_avg"], v["jitter_ms_max"], v["round_trip_ms_max"]) == (12, 40, 300)


def test_overlapping_participants_count_at_their_most(world):
    v = views(world)["crowd"]
    assert (v["attendees"], v["duration_seconds"], v["lobby_wait_seconds"]) == (3, 1740, 30)
    assert v["call_quality"] == "poor"
    assert v["poor_streams"] == ["main-audio calleeToCaller: jitter"]
    assert (v["jitter_ms_avg"], v["jitter_ms_max"]) == (28.5, 40)


def test_a_no_show(world):
    v = views(world)["noshow"]
    assert (v["status"], v["start_utc"], v["duration_seconds"]) == ("no-show", None, None)
    assert v["day"] == "2026-03-02" and v["call_quality"] == "unmeasured"


def test_a_visit_crossing_midnight_belongs_to_the_clinic_day_it_started(world):
    v = views(world)["midnight"]
    assert (v["day"], v["start_local"]) == ("2026-03-02", "2026-03-02T23:50:00-06:00")
    assert v["duration_seconds"] == 1800
    day_two = list(world.rows.rows(Range(date(2026, 3, 2), date(2026, 3, 2))))
    assert world.keys["midnight"] in {r.visit_key for r in day_two}


def test_a_dst_day_counts_real_time(world):
    v = views(world)["dst"]
    assert (v["day"], v["start_local"]) == ("2026-03-08", "2026-03-08T01:30:00-06:00")
    assert v["duration_seconds"] == 3600 and v["end_utc"] == "2026-03-08T08:30:00Z"


def test_the_appointment_reference_is_for_admins_only_and_only_while_kept(world):
    opened: list[str] = []

    def opener(key: str) -> str:
        opened.append(key)
        return f"Appointment/{key[:6]}"

    def reports_at(now: datetime) -> Reports:
        return Reports(world.rows, ThresholdFields, None, opener, now=lambda: now)

    soon = reports_at(t("2026-03-02T18:00:00"))
    plain = world.keys["plain"]
    admin = {v["visit"]: v for v in soon.views(MARCH, admin=True)}
    assert admin[plain]["appointment_reference"] == f"Appointment/{plain[:6]}"
    reader = {v["visit"]: v for v in soon.views(MARCH, admin=False)}
    assert reader[plain]["appointment_reference"] is None
    opened.clear()
    months_later = {v["visit"]: v for v in reports_at(NOW).views(MARCH, admin=True)}
    assert months_later[plain]["appointment_reference"] is None and opened == []  # not read


def test_the_summary_per_day_and_department(world):
    summary = world.reports.summary(MARCH)
    by = {(i["day"], i["department"]): i for i in summary["items"]}
    cardio = by[("2026-03-02", "Cardiology")]
    # plain, noshow, midnight: 2 completed (23 + 30 min), 1 no-show; waits 240 s and 0 s
    assert (cardio["visits"], cardio["completed"], cardio["no_shows"]) == (3, 2, 1)
    assert cardio["average_duration_seconds"] == (1380 + 1800) / 2
    assert cardio["average_lobby_wait_seconds"] == 120
    assert cardio["no_show_rate"] == round(1 / 3, 4) and cardio["texts_sent"] == 2
    assert (cardio["measured_calls"], cardio["poor_calls"], cardio["poor_call_share"]) == (1, 0, 0)
    derm = by[("2026-03-02", "Dermatology")]
    assert (derm["visits"], derm["poor_call_share"]) == (1, 1.0)
    assert summary["total"]["visits"] == 5 and summary["total"]["no_show_rate"] == 0.2
    assert sum(b["visits"] for b in summary["lobby_wait"]) == 4


def test_a_higher_jitter_threshold_rejudges_past_calls(world):
    lenient = Reports(world.rows, lambda: ThresholdFields(jitter_ms=50), None, lambda k: None,
                      now=lambda: NOW)  # fmt: skip
    found = {v["visit"]: v for v in lenient.views(MARCH, admin=False)}
    assert found[world.keys["crowd"]]["call_quality"] == "good"


def test_listener_runs_twice_writes_one_row(world):
    key = world.keys["plain"]
    world.projection.refresh(key)
    world.projection.refresh(key)
    table = world.store.table(REPORTS, VisitReport)
    rows = [r for r in table.partition(partition(EP, "2026-03-02")) if r.visit_key == key]
    assert len(rows) == 1


def test_a_reschedule_moves_the_row_to_its_new_day(world):
    key = world.visit("moved", "2026-03-04T15:00:00")
    world.projection.refresh(key)
    visit = world.visits.get(key)
    world.visits.update(visit, start=t("2026-03-06T15:00:00"))
    world.projection.refresh(key)
    table = world.store.table(REPORTS, VisitReport)
    assert [r.visit_key for r in table.partition(partition(EP, "2026-03-04"))] == []
    assert [r.visit_key for r in table.partition(partition(EP, "2026-03-06"))] == [key]


def test_pages_follow_each_other_without_gaps_or_repeats(world):
    seen, after, pages = [], None, 0
    while True:
        found, nxt = world.rows.page(MARCH, 2, after)
        seen += [r.visit_key for r in found]
        pages += 1
        if nxt is None:
            break
        after = Position.parse(nxt.token(), MARCH)
    everything = [r.visit_key for r in world.rows.rows(MARCH)]
    assert seen == everything and len(seen) == len(set(seen)) and pages >= 3
    # one endpoint (its day partitions) and every endpoint (one range) read the same rows here
    one = Range(MARCH.first, MARCH.last, EP)
    assert [r.visit_key for r in world.rows.rows(one)] == everything
    seen, after = [], None
    while True:
        found, nxt = world.rows.page(one, 3, after)
        seen += [r.visit_key for r in found]
        if nxt is None:
            break
        after = Position.parse(nxt.token(), one)
    assert seen == everything


def test_the_csv_opens_as_the_json_says(world):
    text = b"".join(world.reports.csv(MARCH, admin=False)).decode("utf-8")
    assert text.startswith("\ufeffvisit,endpoint,")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    plain = next(r for r in rows if r["visit"] == world.keys["plain"])
    assert (plain["duration_seconds"], plain["status"], plain["start_utc"]) == (
        "1380.0", "completed", "2026-03-02T15:02:00Z",
    )  # fmt: skip


def test_concurrent_events_of_one_visit_leave_one_row_in_the_right_place(world):
    """A queue batch applies several events of one visit at once; the row moves (scheduled on
    the 4th, both in on the 5th in Chicago) while they race."""
    from concurrent.futures import ThreadPoolExecutor

    key = world.visit("race", "2026-03-04T20:00:00")
    events = [
        ("joined", "provider", "2026-03-05T15:00:00", None),
        ("arrived", "patient", "2026-03-05T15:00:10", None),
        ("joined", "patient", "2026-03-05T15:01:00", None),
        ("joined", "provider", "2026-03-05T15:02:00", "b"),
        ("left", "provider", "2026-03-05T15:03:00", "b"),
        ("left", "patient", "2026-03-05T15:20:00", None),
        ("left", "provider", "2026-03-05T15:21:00", None),
    ]
    with ThreadPoolExecutor(len(events)) as pool:
        list(pool.map(lambda e: world.event(key, *e), events))
    table = world.store.table(REPORTS, VisitReport)
    found = [
        r for day in ("2026-03-04", "2026-03-05")
        for r in table.partition(partition(EP, day)) if r.visit_key == key
    ]  # fmt: skip
    assert len(found) == 1 and found[0].day == "2026-03-05"
    assert (found[0].max_present, found[0].started_at) == (3, t("2026-03-05T15:01:00"))
