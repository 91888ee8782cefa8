"""Sending the texts on Azurite and the sandbox's Communication Services: planned per schedule
version, found by minute, claimed under ETags, and sent at most once even when the service
fails a share of requests (429, 503, timeouts after accepting), runs overlap and a run dies
between the send and its record; quiet hours (in the clinic's zone), opt-out, cancellations
and reschedules; no phone number in clear in any table."""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter

import pytest
from azure.data.tables import TableServiceClient

from dev.stack import SEALING_KEY
from lib.endpoints.actor import Actor
from lib.endpoints.models import EndpointCreate, Validation
from lib.endpoints.service import EndpointService
from lib.privacy import PrivacyKeys
from lib.sealing import Sealer
from lib.sms.config import SmsConfig
from lib.sms.models import ConsentGrant, NumberLinks, SmsSettingsUpdate
from lib.sms.numbers import PhoneNumbers
from lib.sms.sender import SmsSender
from lib.sms.sending import OptOuts, Texting
from lib.storage import TableStore
from lib.visits.sealed import SealedValues
from lib.visits.store import Visit, VisitStore

ADMIN = Actor(oid="00000000-0000-4000-8000-0000000000a1", name="Avery Admin")
HASH_KEY = "integration-hash-key-0123456789abcdef0123"
SEED = "+18335550100"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


class Crash(Exception):
    """The process dies right after the service took the text, before the ledger knows."""


class CrashingSender(SmsSender):
    def __init__(self, connection_string: str, crash_rate: float, seed: int = 1) -> None:
        super().__init__(connection_string, read_timeout=1)
        self.rng, self.crash_rate, self.crashes = random.Random(seed), crash_rate, 0

    def send(self, sender, to, text, tag):
        result = super().send(sender, to, text, tag)
        if self.rng.random() < self.crash_rate:
            self.crashes += 1
            raise Crash(tag)
        return result


@pytest.fixture
def world(storage_connection_string, clean_sandbox, sandbox_trust):
    acs = clean_sandbox.acs
    store = TableStore(
        TableServiceClient.from_connection_string(storage_connection_string),
        "t" + uuid.uuid4().hex[:10],
    )
    valid = lambda e, a: Validation(checked_at=dt.datetime.now(dt.UTC), ok=True)  # noqa: E731
    endpoints = EndpointService(store, valid)
    endpoint = endpoints.create(
        EndpointCreate.model_validate(
            {
                "id": "clinic-a",
                "fhir_base_url": "https://clinic-a.example.org/r4",
                "vendor": "cerner",
                "environment": "test",
                "organization": "Contoso",
                "client_id": "c",
                "client_auth": {"method": "private_key_jwt", "alg": "RS384"},
            }
        ),
        ADMIN,
    )
    config = SmsConfig(store, endpoints, PhoneNumbers(acs.connection_string))
    config.grant(
        ConsentGrant(sends_on_behalf_of_organization=True, attendees_consented=True), None, ADMIN
    )
    config.link(SEED, NumberLinks(endpoints=[endpoint.id]), None, ADMIN)
    settings = config.settings(endpoint.id)
    config.update_settings(
        endpoint.id,
        SmsSettingsUpdate.model_validate(
            {
                "enabled": True,
                "organization_name": "Contoso Clinic",
                "reminder_offsets_minutes": [60],
                "quiet_hours": {"start": "00:00", "end": "00:00"},
            }
        ),
        settings.etag,
        ADMIN,
    )
    privacy = PrivacyKeys(HASH_KEY)
    sealed = SealedValues(store, Sealer.from_setting(SEALING_KEY, hash_key=HASH_KEY))
    visits = VisitStore(store)
    clock = Clock()
    made = {}

    def texting(sender: SmsSender | None = None) -> Texting:
        return Texting(
            store,
            config,
            visits,
            sealed,
            sender or SmsSender(acs.connection_string),
            OptOuts(store, privacy),
            lambda key, v: f"https://evc.example.org/api/j/{key[:8]}v{v}",
            now=clock,
        )

    def visit(phone: str, starts_in: dt.timedelta = dt.timedelta(hours=3)) -> Visit:
        start = (clock.now + starts_in).replace(microsecond=0)
        row = Visit(
            partition_key=uuid.uuid4().hex,
            row_key="visit",
            endpoint_id=endpoint.id,
            organizer_oid="",
            start=start,
            end=start + dt.timedelta(minutes=30),
            created_at=clock.now,
            created_by_role="schedule",
            schedule_version=1,
        )
        row = visits.claim(row).entity
        sealed.put(row.key, "phone", phone, start + dt.timedelta(days=1))
        made[row.key] = phone
        return row

    yield type(
        "World",
        (),
        {
            "acs": acs,
            "store": store,
            "config": config,
            "visits": visits,
            "clock": clock,
            "texting": staticmethod(texting),
            "sealed": sealed,
            "visit": staticmethod(visit),
            "endpoint": endpoint,
            "storage": storage_connection_string,
            "made": made,
        },
    )
    acs.set_chaos(None)


def drain(world, texting_for, runs: int = 40, step=dt.timedelta(minutes=5)) -> Counter:
    outcomes: Counter = Counter()
    for _ in range(runs):
        texting = texting_for()
        try:
            report = texting.run()
        except Crash:
            outcomes["crash"] += 1
            continue
        outcomes.update(report.outcomes)
        if report.seen == 0:
            break
        world.clock.now += step
    return outcomes


def test_confirmation_and_reminder_go_once_each_and_only_when_due(world):
    phone = "+15555550101"
    visit = world.visit(phone, dt.timedelta(hours=2))
    texting = world.texting()
    assert texting.plan(visit, "booked") == 2
    assert texting.plan(visit, "booked") == 0  # the same message again plans nothing new
    texting.run()
    texting.run()
    [confirmation] = world.acs.sent_to(phone)
    assert "Contoso Clinic: video visit" in confirmation.message and "Join:" in confirmation.message
    world.clock.now += dt.timedelta(minutes=61)
    texting.run()
    world.clock.now += dt.timedelta(minutes=1)
    texting.run()
    texts = world.acs.sent_to(phone)
    assert len(texts) == 2 and "reminder" in texts[1].message
    rows = {r.text_id: r for r in texting.ledger.for_visit(visit.key)}
    assert {r.state for r in rows.values()} == {"sent"}
    assert rows["booked-v1"].message_id == texts[0].id
    assert texts[0].tag == rows["booked-v1"].tag and phone not in texts[0].tag


def test_exactly_once_under_faults_overlapping_runs_and_crashes(world):
    world.acs.set_chaos(0.2, seed=11, timeout_s=1.5)  # 429, 503, accepted-then-too-late
    phones = [f"+1555555{1000 + i:04d}" for i in range(80)]
    planner = world.texting()
    for phone in phones:
        planner.plan(world.visit(phone), "booked")
    sender = CrashingSender(world.acs.connection_string, crash_rate=0.05)
    outcomes: Counter = Counter()
    for _ in range(80):  # two overlapping runs each time, killed now and then
        reports = []

        def one_run() -> None:
            try:
                reports.append(world.texting(sender).run())
            except Crash:
                outcomes["crash"] += 1

        threads = [threading.Thread(target=one_run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for r in reports:
            outcomes.update(r.outcomes)
        left = [r for k in world.made for r in planner.ledger.for_visit(k) if r.state == "due"]
        if not left and len(reports) == 2 and all(r.seen == 0 for r in reports):
            break
        world.clock.now += dt.timedelta(minutes=3)  # past retries and the 2-minute lease
    # Per text (the ledger row's tag): the reminders came due too as the clock moved on.
    received = Counter(t.tag for t in world.acs.texts.snapshot() if t.direction == "outbound")
    ledger = {k: r for k in world.made for r in planner.ledger.for_visit(k) if r.kind == "booked"}
    states = Counter(r.state for r in ledger.values())
    assert max(received.values()) == 1, "a text went twice"
    unknown = [k for k, r in ledger.items() if r.state == "unknown"]
    for key, row in ledger.items():
        if row.state == "sent":
            assert received[row.tag] == 1, (world.made[key], row)
        elif row.state == "unknown":
            assert received[row.tag] <= 1
        else:
            raise AssertionError(f"{world.made[key]} left in {row.state}: {row.reason}")
    assert states["sent"] >= 60 and outcomes["crash"] >= 1, (states, outcomes)
    print(
        f"\nexactly-once: {dict(states)}; unknown (maybe sent, never resent): {len(unknown)}; "
        f"outcomes {dict(outcomes)}; crashes {sender.crashes}"
    )


def test_a_reschedule_supersedes_and_a_cancellation_stops_pending_texts(world):
    phone = "+15555550102"
    visit = world.visit(phone, dt.timedelta(hours=5))
    texting = world.texting()
    texting.plan(visit, "booked")
    texting.run()
    moved = world.visits.update(
        visit,
        start=visit.start + dt.timedelta(hours=1),
        end=visit.end + dt.timedelta(hours=1),
        schedule_version=2,
    )
    texting.plan(moved, "moved")
    texting.run()
    assert [("moved to" in t.message) for t in world.acs.sent_to(phone)] == [False, True]
    cancelled = world.visits.update(
        world.visits.get(visit.key), cancelled_at=world.clock.now, schedule_version=3
    )
    texting.plan(cancelled, "cancelled")
    texting.run()
    world.clock.now += dt.timedelta(hours=5)
    texting.run()
    sent = [t.message for t in world.acs.sent_to(phone)]
    assert len(sent) == 3 and "cancelled" in sent[2]  # no reminder for v1, v2 or after cancel
    states = {r.text_id: (r.state, r.reason) for r in texting.ledger.for_visit(visit.key)}
    assert states["reminder-60-v1"][0] == "skipped" and states["reminder-60-v2"][0] == "skipped"


def test_opted_out_numbers_get_nothing_and_blocked_ones_are_opted_out(world):
    stopped, blocked = "+15555550103", "+15555550104"
    texting = world.texting()
    OptOuts(world.store, PrivacyKeys(HASH_KEY)).add(stopped, "stop")
    world.acs.block(blocked)
    for phone in (stopped, blocked):
        texting.plan(world.visit(phone), "booked")
    texting.run()
    assert world.acs.sent_to(stopped) == [] and world.acs.sent_to(blocked) == []
    assert OptOuts(world.store, PrivacyKeys(HASH_KEY)).has(blocked)


@pytest.mark.parametrize(
    ("clinic_time", "ends"),
    [
        (
            "2027-03-14T01:30",
            "2027-03-14T08:00-05:00",
        ),  # spring-forward night: 02:00 does not exist
        ("2027-11-07T01:30", "2027-11-07T08:00-06:00"),  # fall-back night: 01:30 happens twice
        (
            "2027-11-06T21:00",
            "2027-11-07T08:00-06:00",
        ),  # inside from the start; ends after the change
        ("2027-11-07T08:00", None),
        ("2027-11-07T20:59", None),
    ],
)
def test_quiet_hours_in_the_clinics_zone_on_dst_change_days(clinic_time, ends):
    from zoneinfo import ZoneInfo

    from lib.sms.models import EndpointSms
    from lib.sms.sending import in_quiet_hours

    settings = EndpointSms.model_validate(
        {"partition_key": "p", "row_key": "sms", "endpoint": "e", "time_zone": "America/Chicago"}
    )
    local = dt.datetime.fromisoformat(clinic_time).replace(tzinfo=ZoneInfo("America/Chicago"))
    found = in_quiet_hours(local.astimezone(dt.UTC), settings)
    assert found == (dt.datetime.fromisoformat(ends) if ends else None)


def test_a_reminder_in_quiet_hours_waits_for_their_end_or_is_skipped(world):
    from zoneinfo import ZoneInfo

    settings = world.config.settings(world.endpoint.id)
    world.config.update_settings(
        world.endpoint.id,
        SmsSettingsUpdate.model_validate(
            {
                "quiet_hours": {"start": "21:00", "end": "08:00"},
                "confirmations": {"scheduled": False},
            }
        ),
        settings.etag,
        ADMIN,
    )
    chicago = ZoneInfo("America/Chicago")
    world.clock.now = dt.datetime(2026, 12, 1, 22, 0, tzinfo=chicago).astimezone(dt.UTC)
    morning = world.visit("+15555550105", dt.timedelta(hours=11))  # 09:00: reminder 08:00
    early = world.visit("+15555550106", dt.timedelta(hours=8, minutes=30))  # 06:30: before 08:00
    texting = world.texting()
    for v in (morning, early):
        texting.plan(v, "booked")
    world.clock.now = early.start - dt.timedelta(minutes=59)  # 05:31: early's reminder is due
    texting.run()
    state = {r.kind: r for r in texting.ledger.for_visit(early.key)}["reminder"]
    assert (state.state, state.reason) == ("skipped", "quiet hours until the visit")
    world.clock.now = morning.start - dt.timedelta(minutes=59)  # 08:01: morning's is due, sent
    texting.run()
    assert len(world.acs.sent_to("+15555550105")) == 1 and world.acs.sent_to("+15555550106") == []


def test_no_phone_number_in_clear_in_any_table(world):
    phone = "+15555550107"
    texting = world.texting()
    texting.plan(world.visit(phone), "booked")
    texting.run()
    service = TableServiceClient.from_connection_string(world.storage)
    prefix = world.store._prefix
    found = []
    for table in service.list_tables():
        if table.name.startswith(prefix):
            text = " ".join(
                str(dict(r)) for r in service.get_table_client(table.name).list_entities()
            )
            if "5555550107" in text:
                found.append(table.name)
    assert found == [] and len(world.acs.sent_to(phone)) == 1


def test_after_the_appointment_cleanup_removes_the_phone_and_the_ledger(world):
    from lib.sms import cleanup

    phone = "+15555550108"
    visit = world.visit(phone, dt.timedelta(hours=1))
    texting = world.texting()
    texting.plan(visit, "booked")
    texting.run()
    assert world.sealed.open(visit.key, "phone") == phone
    later = visit.end + dt.timedelta(days=3)
    assert world.sealed.purge_expired(now=later) >= 1
    assert cleanup.purge(world.store, now=later) >= 1
    assert world.sealed.open(visit.key, "phone") is None
    assert texting.ledger.for_visit(visit.key) == []
    assert cleanup.purge(world.store, now=later) == 0  # idempotent


def test_texts_of_a_deleted_endpoint_are_skipped_and_the_run_goes_on(world):
    phone = "+15555550102"
    gone = world.visit(phone, dt.timedelta(hours=2))
    texting = world.texting()
    texting.plan(gone, "booked")
    valid = lambda e, a: Validation(checked_at=dt.datetime.now(dt.UTC), ok=True)  # noqa: E731
    service = EndpointService(world.store, valid)
    service.delete(world.endpoint.id, service.get(world.endpoint.id).etag, ADMIN)
    report = texting.run()
    assert report.skipped == 1 and world.acs.sent_to(phone) == []
    [row] = [r for r in texting.ledger.for_visit(gone.key) if r.kind == "booked"]
    assert (row.state, row.reason) == ("skipped", "the endpoint is gone")


def test_a_run_reads_each_endpoints_settings_and_number_once_not_once_a_text(world, monkeypatch):
    asked: Counter = Counter()
    for name in ("settings", "number_for"):
        real = getattr(world.config, name)

        def counted(endpoint_id, _real=real, _name=name):
            asked[_name] += 1
            return _real(endpoint_id)

        monkeypatch.setattr(world.config, name, counted)
    texting = world.texting()
    phones = [f"+1555555{n:04d}" for n in range(200, 205)]
    for phone in phones:
        texting.plan(world.visit(phone), "booked")
    asked.clear()  # planning reads the settings too: only the run is counted
    report = texting.run()
    assert report.sent == 5 and all(world.acs.sent_to(p) for p in phones)
    assert asked == {"settings": 1, "number_for": 1}
