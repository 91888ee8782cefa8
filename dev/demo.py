"""Demo visits for `make run` (CONNECTOR_DEMO_VISIT_DAYS): a few weeks of sandbox visits, so a
newcomer's reports are not empty.

They go the way real ones do: each visit is claimed in Visits, its events are sent on the
`visit-events` queue (the app's queue function applies them, and the report projection listens),
its call record's figures go beside it (CallQualityStore) followed by a `measured` event, and its
texts are ledger rows as the texts timer leaves them. Nothing writes a report row directly.
Deterministic (one random seed per visit, fixed event ids): seeding again adds nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dev.sandbox.directory import USERS

CLINICIANS = [u for u in USERS if u.key in ("reyes", "okafor", "lindqvist")]
DEPARTMENTS = {"reyes": "Family medicine", "okafor": "Cardiology", "lindqvist": "Paediatrics"}
ZONE = ZoneInfo("America/Chicago")  # the sandbox clinics' default text settings zone
PER_DAY = 5


def seed_demo_visits(
    svc: Any,
    endpoints: list[str],
    days: int,
    today: date | None = None,
    per_day: int = PER_DAY,
    last: int = 3,
) -> int:
    """Seed `days` days of visits per endpoint, the last of them `last` days ago; returns how
    many visits. Three days ago by default: every demo visit is then past its write-back window,
    so the EHR is never told of a visit that did not happen (lib/writeback/jobs.py
    `past_window`). A test of an endpoint without write-back may seed up to yesterday."""
    today = today or datetime.now(UTC).astimezone(ZONE).date()
    count = 0
    for endpoint in endpoints:
        for back in range(days + last - 1, last - 1, -1):
            day = today - timedelta(days=back)
            for n in range(per_day):
                _visit(svc, endpoint, day, n)
                count += 1
    return count


def _visit(svc: Any, endpoint: str, day: date, n: int) -> None:
    from lib.visits.events import VisitEventMessage
    from lib.visits.quality import CallQualityStore, StreamFigures
    from lib.visits.sealed import APPOINTMENT_ID, WRITEBACK_WINDOW
    from lib.visits.store import Visit

    rng = random.Random(f"{endpoint}|{day}|{n}")  # noqa: S311 - demo figures, not secrets
    key = svc.privacy.keyed_hash("demo", endpoint, day.isoformat(), str(n))
    clinician = rng.choice(CLINICIANS)
    start = datetime.combine(day, time(8 + 2 * n % 9, rng.choice((0, 15, 30, 45))), ZONE)
    start = start.astimezone(UTC)
    svc.visits.claim(
        Visit(
            partition_key=key, row_key="visit", endpoint_id=endpoint,
            organizer_oid=clinician.object_id, start=start, end=start + timedelta(minutes=30),
            department=DEPARTMENTS[clinician.key], created_at=start - timedelta(days=3),
            created_by_role="provider",
        )
    )  # fmt: skip
    end = start + timedelta(minutes=30)
    if end + WRITEBACK_WINDOW > datetime.now(UTC):  # kept as the launch keeps it, for admins
        svc.sealed.put(
            key, APPOINTMENT_ID, f"Appointment/demo-{day:%m%d}-{n}", end + WRITEBACK_WINDOW
        )
    journey = list(_journey(rng, start))
    for i, (kind, role, at, who) in enumerate(journey):
        svc.events.publish(
            VisitEventMessage(
                event_id=f"demo{key[:20]}{i:03d}", visit_key=key, kind=kind, role=role, at=at,
                source="graph", participant=who,
            )
        )  # fmt: skip
    for text_id in ("booked-v1", "reminder-1440-v1", "reminder-15-v1")[: rng.randint(0, 3)]:
        _text(svc, key, endpoint, text_id, start)
    came = any(kind == "joined" and role == "patient" for kind, role, _, _ in journey)
    if came and rng.random() < 0.9:  # most calls have a record (a no-show's has no streams)
        poor = rng.random() < 0.15
        streams = [
            StreamFigures(
                media="main-audio", direction=direction,
                avg_packet_loss=round(rng.uniform(0.0, 0.03), 4),
                max_packet_loss=round(rng.uniform(0.03, 0.09), 4),
                avg_jitter_ms=round(rng.uniform(40, 70) if poor and direction == "calleeToCaller"
                                    else rng.uniform(4, 20), 1),
                max_jitter_ms=round(rng.uniform(30, 90), 1),
                avg_round_trip_ms=round(rng.uniform(40, 160), 1),
                max_round_trip_ms=round(rng.uniform(160, 400), 1),
            )
            for direction in ("callerToCallee", "calleeToCaller")
        ]  # fmt: skip
        CallQualityStore(svc.store).put(
            key, f"demo-record-{key[:12]}", start + timedelta(hours=1), streams
        )
        svc.events.publish(
            VisitEventMessage(
                event_id=f"demo{key[:20]}q00", visit_key=key, kind="measured", role="visit",
                at=start + timedelta(hours=1), source="graph",
            )
        )  # fmt: skip


def _journey(rng: random.Random, start: datetime) -> Iterator[tuple[str, str, datetime, Any]]:
    """One visit's events: a no-show now and then, lobby waits, a second clinician sometimes."""
    minute = timedelta(minutes=1)
    arrives = start + rng.uniform(-5, 3) * minute
    if rng.random() < 0.12:  # the patient never comes
        yield ("joined", "provider", start, None)
        yield ("left", "provider", start + 15 * minute, None)
        yield ("ended", "visit", start + 15 * minute, None)
        return
    admitted = arrives + rng.expovariate(1 / 4) * minute
    ends = admitted + rng.uniform(8, 35) * minute
    yield ("arrived", "patient", arrives, None)
    yield ("lobby", "patient", arrives + 0.2 * minute, None)
    yield ("joined", "provider", min(admitted, start + 2 * minute), None)
    yield ("joined", "patient", admitted, None)
    if rng.random() < 0.1:  # a colleague joins for a while
        yield ("joined", "provider", admitted + 5 * minute, "colleague")
        yield ("left", "provider", admitted + 9 * minute, "colleague")
    yield ("left", "patient", ends, None)
    yield ("left", "provider", ends + 0.5 * minute, None)


def _text(svc: Any, key: str, endpoint: str, text_id: str, start: datetime) -> None:
    from lib.sms.ledger import LedgerRow

    due = start - timedelta(days=1)
    row = LedgerRow(partition_key=key, row_key=text_id, endpoint_id=endpoint, kind="reminder",
                    version=1, state="delivered", due_at=due, updated_at=due)  # fmt: skip
    svc.texting.ledger.rows.upsert(row)  # no due pointer: the texts timer never sees it
