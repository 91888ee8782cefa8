"""The capacity model of docs/capacity.md: a large health system's day, and what it needs, computed
from what one instance was measured to sustain (bench/capacity.py) and the services' published
limits. Pure arithmetic, no I/O: `make docs` writes its table into docs/capacity.md from
``RECORDED`` (tests/unit/test_docs.py keeps the doc current), and `python -m bench capacity`
prints it from a fresh measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    launches_per_s: float  # one instance, sustained
    at_concurrency: int
    p95_s: float
    storage_ops_per_launch: float  # provider and patient launches, averaged
    events_per_s: float  # one instance's queue trigger
    texts_per_s: float  # one run of the texts timer
    when: str  # the date of the run
    curve: str = ""  # throughput / p95 at each step
    cpu_ms_per_launch: float = 0.0  # the app process's CPU time a launch


# What docs/capacity.md was last computed from (a run of `python -m bench capacity`).
RECORDED = Measured(
    launches_per_s=9.9, at_concurrency=12, p95_s=1.81, storage_ops_per_launch=5.5,
    events_per_s=35.2, texts_per_s=12.6, when="2026-12-01",
    curve="C=1: 9.2/s p95 0.23s; C=2: 7.5/s p95 0.48s; C=4: 7.4/s p95 0.87s; "
          "C=8: 7.7/s p95 1.96s; C=12: 9.9/s p95 1.81s",
    cpu_ms_per_launch=82.2,
)  # fmt: skip


# --- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    """A large health system's day: the assumptions docs/capacity.md states."""

    visits_per_day: int = 50_000
    clinics: int = 200
    clinic_hours: float = 10.0  # the day's visits fall in these hours
    slot_minutes: int = 30  # appointments start on the hour and the half hour
    launches_per_visit: float = 3.0  # the clinician's, the patient's, and one more (a tab closed)
    burst_share: float = 0.6  # of a slot's launches, this share within burst_seconds of its start
    burst_seconds: int = 120
    burst_events_per_visit: int = 5  # arrived x2, lobby, joined x2 at the start (the rest spread)
    event_entities: int = 8  # an applied event: its row, the state read and save, its events read
    texts_per_visit: int = 3  # a confirmation and two reminders
    acs_send_seconds: float = 0.1  # a send's round trip to Communication Services (assumed)
    working_days: int = 22  # a month's
    headroom: float = 0.6  # instances planned at 60 % of the measured rate


# Published limits the model checks against (docs/capacity.md cites each).
PARTITION_ENTITIES_S = 2_000  # Table Storage, one partition, 1 KiB entities
ACCOUNT_ENTITIES_S = 20_000  # Table Storage, one account
QUEUE_MESSAGES_S = 2_000  # one queue, 1 KiB messages
TOLL_FREE_PER_MIN = 200  # Communication Services, one toll-free number
GRAPH_APP_PER_S = 13_000  # Graph, any request, per app (130,000 per 10 s)
MEETINGS_PER_ORGANIZER_MONTH = 2_000  # Graph meeting information, per user
CALL_RECORDS_PER_S = 75  # Graph call records, per app per tenant (1,500 per 20 s)


def model(m: Measured, s: System = System()) -> list[tuple[str, str, str]]:
    """(what, how much, from what) rows: the doc's table."""
    from lib.sms.sending import RUN_LIMIT

    slots = s.clinic_hours * 60 / s.slot_minutes
    per_slot = s.visits_per_day / slots
    average = s.visits_per_day * s.launches_per_visit / (s.clinic_hours * 3600)
    burst = per_slot * s.launches_per_visit * s.burst_share / s.burst_seconds
    instances = math.ceil(burst / (m.launches_per_s * s.headroom)) if m.launches_per_s else 0
    ceiling = 1000 / m.cpu_ms_per_launch if m.cpu_ms_per_launch else 0
    events = per_slot * s.burst_events_per_visit * s.burst_share / s.burst_seconds
    event_instances = math.ceil(events / (m.events_per_s * s.headroom)) if m.events_per_s else 0
    entities = burst * m.storage_ops_per_launch + events * s.event_entities
    numbers = math.ceil(per_slot / TOLL_FREE_PER_MIN)  # a slot's reminders, due in one minute
    per_text = (1 / m.texts_per_s if m.texts_per_s else 0) + s.acs_send_seconds
    sequential = min(RUN_LIMIT, 60 / per_text)
    graph = per_slot * 2 * s.burst_share / s.burst_seconds  # createOrGet + PATCH, new visits
    per_organizer = MEETINGS_PER_ORGANIZER_MONTH / s.working_days
    return [
        ("visits in one slot", f"{per_slot:,.0f}",
         f"{s.visits_per_day:,} a day, {s.clinic_hours:.0f} clinic hours, a slot every "
         f"{s.slot_minutes} minutes ({slots:.0f} slots); {per_slot / s.clinics:.1f} a clinic"),
        ("launches a second, the day's average", f"{average:.1f}",
         f"{s.launches_per_visit:g} launches a visit"),
        ("launches a second, a slot's first minutes", f"{burst:.1f}",
         f"{s.burst_share:.0%} of a slot's launches within {s.burst_seconds} s of its start"),
        ("launches a second one instance sustains", f"{m.launches_per_s:.1f}",
         f"measured {m.when}: p95 {m.p95_s:.2f} s at {m.at_concurrency} concurrent"),
        ("instances for the launches", f"{instances}",
         f"the burst at {s.headroom:.0%} of the measured rate each"),
        ("launches a second one worker process could do, by its CPU", f"{ceiling:.0f}",
         f"{m.cpu_ms_per_launch:.0f} ms of the app's CPU a launch (measured; one Python process "
         f"uses one core at most): {math.ceil(burst / ceiling) if ceiling else 0} instance(s) "
         "if nothing else limited it" if m.cpu_ms_per_launch else "not measured"),
        ("visit events a second, a slot's first minutes", f"{events:.0f}",
         f"{s.burst_events_per_visit} a visit at its start; one queue takes "
         f"{QUEUE_MESSAGES_S:,}/s ({events / QUEUE_MESSAGES_S:.1%})"),
        ("instances applying events", f"{event_instances}",
         f"one applies {m.events_per_s:.0f}/s (measured), planned at {s.headroom:.0%}"),
        ("table entities a second, a slot's first minutes", f"{entities:,.0f}",
         f"{m.storage_ops_per_launch:.1f} a launch (measured), {s.event_entities} an event; "
         f"one account takes {ACCOUNT_ENTITIES_S:,}/s ({entities / ACCOUNT_ENTITIES_S:.0%})"),
        ("texts a day", f"{s.visits_per_day * s.texts_per_visit:,}",
         f"{s.texts_per_visit} a visit"),
        ("toll-free numbers to send a slot's reminders in one minute", f"{numbers}",
         f"{per_slot:,.0f} reminders due together, {TOLL_FREE_PER_MIN} a minute a number"),
        ("texts a minute one timer run sends", f"{sequential:,.0f}",
         f"one after the other: {1 / m.texts_per_s * 1000:.0f} ms each here (measured, the "
         f"stand-in answers at once) + {s.acs_send_seconds * 1000:.0f} ms to the service "
         f"(assumed); a slot's reminders take {per_slot / sequential:.1f} minutes"
         if m.texts_per_s else "not measured"),
        ("Graph calls a second, a slot's first minutes", f"{graph:.0f}",
         f"createOrGet + the lobby PATCH a new visit; the app may make {GRAPH_APP_PER_S:,}/s "
         f"({graph / GRAPH_APP_PER_S:.2%})"),
        ("call records a second, a slot's end", f"{per_slot * s.burst_share / s.burst_seconds:.0f}",
         f"one a visit; {CALL_RECORDS_PER_S}/s an app per tenant"),
        ("meetings a working day one organizer may make", f"{per_organizer:.0f}",
         f"{MEETINGS_PER_ORGANIZER_MONTH:,} a month a user: a default organizer serves at most "
         f"that many visits a day; {math.ceil(s.visits_per_day / per_organizer)} organizers if "
         "every visit used one"),
    ]  # fmt: skip


def markdown(m: Measured = RECORDED, s: System = System()) -> str:
    rows = ["| what | how much | from |", "|---|---|---|"]
    rows += [f"| {what} | {value} | {note} |" for what, value, note in model(m, s)]
    rows += ["", f"Measured {m.when} (`python -m bench capacity`), launches by concurrent "
                 f"browsers: {m.curve or 'not yet measured'}."]  # fmt: skip
    return "\n".join(rows)
