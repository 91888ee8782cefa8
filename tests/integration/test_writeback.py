"""EHR write-back against the sandbox EHRs over real HTTPS, with Azurite for tables and queues.

Each test builds the write-back pieces as lib/bootstrap.py does (planner on the timeline, worker,
dead-letter table, poison sweep), on its own table prefix and queue, and drives them with real
visit events: the stand-ins record what they were told (dev/sandbox/ehr/writes.py).
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64DecodePolicy

from lib.endpoints.actor import Actor
from lib.endpoints.models import EndpointCreate, EndpointUpdate
from lib.endpoints.secrets import SecretBindings
from lib.endpoints.service import EndpointService
from lib.endpoints.validation import validate_endpoint
from lib.net.http import OutboundHttp
from lib.net.retry import RetryPolicy
from lib.sealing import Sealer
from lib.smart.keys import KeySet
from lib.smart.tokens import BackendTokenCache
from lib.storage import QueueReader, QueueSender, TableStore
from lib.visits.events import VisitEventMessage
from lib.visits.sealed import APPOINTMENT_ID, SealedValues
from lib.visits.store import Visit, VisitStore
from lib.visits.timeline import VisitTimeline
from lib.web.errors import AppError
from lib.writeback.adapters import EhrCalls, EpicStatus, FhirAppointment
from lib.writeback.credentials import Credentials
from lib.writeback.errors import WriteFailure
from lib.writeback.failures import KEPT_FOR, FailureStore
from lib.writeback.jobs import WritebackJob, WritebackPlanner
from lib.writeback.progress import ProgressStore
from lib.writeback.sweep import PoisonSweep
from lib.writeback.worker import TransientWriteFailure, WriteBack
from tests.helpers import generate_ec_pem, generate_rsa_pem

ACTOR = Actor(oid=str(uuid.uuid4()), name="Test Admin")
APPROVER = {"oid": str(uuid.uuid4()), "display_name": "Epic Analyst"}
T0 = datetime.now(UTC).replace(microsecond=0)
MAX_DEQUEUE = 5


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.from_pems([generate_rsa_pem(), generate_ec_pem()])


@dataclass
class Rig:
    sandbox: Any
    store: TableStore
    endpoints: EndpointService
    visits: VisitStore
    sealed: SealedValues
    timeline: VisitTimeline
    worker: WriteBack
    failures: FailureStore
    progress: ProgressStore
    queue: QueueSender
    raw_queue: QueueClient
    poison: QueueClient
    sweep: PoisonSweep

    def endpoint(self, vendor: str, alg: str = "RS384", **writeback: Any) -> str:
        """A validated endpoint on the sandbox's `vendor` EHR, write-back on (backend services)."""
        endpoint_id = f"wb-{vendor}-{secrets.token_hex(3)}"
        auth = {"method": "backend_services", "client_id": f"evc-{vendor}-jwt", "alg": alg}
        body = EndpointCreate.model_validate(
            {
                "id": endpoint_id,
                "fhir_base_url": self.sandbox.ehr_base(vendor),
                "vendor": vendor,
                "environment": "test",
                "organization": f"Write-back {vendor}",
                "client_id": f"evc-{vendor}-jwt",
                "client_auth": {"method": "private_key_jwt", "alg": alg},
                "approver": APPROVER if vendor == "epic" else None,
                "writeback": {"enabled": True, "auth": auth, **writeback},
            },
            context={"local_mode": True},
        )
        created = self.endpoints.create(body, ACTOR)
        assert created.validation and created.validation.ok, created.validation
        return endpoint_id

    def visit(self, endpoint_id: str, appointment_id: str) -> str:
        key = "vk" + uuid.uuid4().hex
        self.visits.claim(
            Visit(
                partition_key=key,
                row_key="visit",
                endpoint_id=endpoint_id,
                organizer_oid=str(uuid.uuid4()),
                created_at=T0,
                created_by_role="provider",
            )
        )
        purge = datetime.now(UTC) + timedelta(hours=1)
        self.sealed.put(key, APPOINTMENT_ID, f"Appointment/{appointment_id}", purge)
        return key

    def event(self, key: str, kind: str, seconds: float, role: str = "patient") -> None:
        self.timeline.apply(
            VisitEventMessage(
                event_id=uuid.uuid4().hex,
                visit_key=key,
                kind=kind,  # type: ignore[arg-type]
                role=role,  # type: ignore[arg-type]
                at=T0 + timedelta(seconds=seconds),
                source="graph",
            )
        )

    def jobs(self) -> list[WritebackJob]:
        """Every visible job on the queue, taken off it."""
        found = []
        for message in self.raw_queue.receive_messages(max_messages=32, visibility_timeout=30):
            found.append(WritebackJob.from_text(message.content))
            self.raw_queue.delete_message(message)
        return found

    def drain(self) -> list[str]:
        return [self.worker.handle(job, 1, MAX_DEQUEUE) for job in self.jobs()]


@pytest.fixture
def rig(clean_sandbox, sandbox_trust, storage_connection_string, keys, jwks_server, request):
    jwks_server.jwks = keys.public_jwks()
    for vendor in ("epic", "cerner"):
        clean_sandbox.stand_ins[vendor].update_client(f"evc-{vendor}-jwt", jwks_url=jwks_server.url)
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    store = TableStore(tables, prefix="wb" + uuid.uuid4().hex[:10])
    queues = QueueServiceClient.from_connection_string(storage_connection_string)
    name = "wb-" + uuid.uuid4().hex[:12]
    sender = QueueSender(queues, name)
    sender.ready()
    raw = queues.get_queue_client(name, message_decode_policy=TextBase64DecodePolicy())
    poison = queues.get_queue_client(f"{name}-poison")
    poison.create_queue()
    http = OutboundHttp(local_mode=True)
    secrets_ = SecretBindings(store)
    endpoints = EndpointService(
        store, lambda e, actor: validate_endpoint(e, http, keys, secrets_, actor), staleness=0
    )
    visits = VisitStore(store)
    sealed = SealedValues(store, Sealer([secrets.token_bytes(32)]))
    progress = ProgressStore(store)
    failures = FailureStore(store)
    writer_http = OutboundHttp(local_mode=True, retries=RetryPolicy(attempts=1), read_timeout=2)
    calls = EhrCalls(writer_http, Credentials(writer_http, keys, BackendTokenCache()))
    worker = WriteBack(
        endpoints=endpoints,
        sealed=sealed,
        progress=progress,
        failures=failures,
        adapters={"epic": EpicStatus(calls), "fhir": FhirAppointment(calls)},
        queue=lambda: sender,
        lease_seconds=30,
    )
    planner = WritebackPlanner(endpoints, progress, lambda: sender)
    yield Rig(
        sandbox=clean_sandbox,
        store=store,
        endpoints=endpoints,
        visits=visits,
        sealed=sealed,
        timeline=VisitTimeline(visits, listeners=[planner]),
        worker=worker,
        failures=failures,
        progress=progress,
        queue=sender,
        raw_queue=raw,
        poison=poison,
        sweep=PoisonSweep(QueueReader(queues, f"{name}-poison"), failures),
    )
    for client in (raw, poison):
        client.delete_queue()


def appointment(sandbox, vendor: str, clinician: str = "reyes") -> str:
    ehr = sandbox.stand_ins[vendor]
    return ehr.chart.id_of(ehr.chart.slots(clinician=clinician)[0])


def history(sandbox, vendor: str, appointment_id: str) -> list[str]:
    written = sandbox.stand_ins[vendor].writes.get(appointment_id)
    return [h["value"] for h in written.history]


# --- the adapters, end to end ------------------------------------------------------------------
def test_epic_status_follows_the_visit_with_backend_services_rs384(rig):
    endpoint = rig.endpoint("epic", "RS384")
    appt = appointment(rig.sandbox, "epic")
    key = rig.visit(endpoint, appt)
    steps = (("arrived", 0, 1), ("lobby", 5, 0), ("joined", 60, 1), ("left", 900, 1))
    for kind, at, jobs in steps:  # arrived and lobby are one milestone (connected): one job
        rig.event(key, kind, at)
        assert rig.drain() == ["written"] * jobs
    assert history(rig.sandbox, "epic", appt) == ["Connected", "InVisit", "Disconnected"]
    assert len(rig.sandbox.epic.writes.get(appt).accepted) == 3
    calls = [e for e in rig.sandbox.journal.entries() if "SetExternalConnectionStatus" in e.path]
    assert calls and all(c.status == 200 for c in calls)
    assert rig.sandbox.epic.connection_status[appt] == "Disconnected"  # the schedule's cell


def test_cerner_appointment_patch_with_backend_services_es384(rig, sandbox_http):
    endpoint = rig.endpoint("cerner", "ES384")
    appt = appointment(rig.sandbox, "cerner")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    rig.event(key, "joined", 30)
    assert "written" in rig.drain()  # two jobs: the first may find itself overtaken (stale)
    rig.event(key, "left", 600)
    rig.drain()
    states = history(rig.sandbox, "cerner", appt)
    assert states[-1] == "fulfilled" and set(states) <= {"arrived", "checked-in", "fulfilled"}
    written = rig.sandbox.cerner.writes.get(appt)
    assert written.version == 1 + len(states)
    # the PATCHes were JSON Patch with If-Match, as the stand-in checks (else 412 / 415)
    patches = [e for e in rig.sandbox.journal.entries() if e.method == "PATCH"]
    assert patches and all(e.status == 200 for e in patches)


def test_generic_fhir_adapter_on_an_epic_base_and_custom_codes(rig):
    """Vendor-neutral Appointment PATCH ("fhir"), per-endpoint codes, a milestone switched off."""
    statuses = {"connected": "arrived", "in_visit": None, "left": "fulfilled"}
    endpoint = rig.endpoint("epic", adapter="fhir", statuses=statuses)
    appt = appointment(rig.sandbox, "epic", "okafor")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    rig.drain()
    rig.event(key, "joined", 10)
    assert rig.drain() == ["unchanged"]  # nothing configured for in_visit: nothing written
    rig.event(key, "left", 20)
    rig.drain()
    assert history(rig.sandbox, "epic", appt) == ["arrived", "fulfilled"]


def test_epic_service_account(rig, monkeypatch):
    monkeypatch.setenv("EHR_SECRET_WB_EPIC_SERVICE", "epic-service-local-secret")
    auth = {"method": "service_account", "username": "emp$TELEHEALTH",
            "secret_setting": "EHR_SECRET_WB_EPIC_SERVICE", "user_id": "TELEHEALTH",
            "user_id_type": "EXTERNAL"}  # fmt: skip
    endpoint = rig.endpoint("epic")
    rig.endpoints.update(
        endpoint,
        EndpointUpdate(writeback={"enabled": True, "auth": auth}),
        rig.endpoints.get(endpoint).etag,
        ACTOR,
    )
    appt = appointment(rig.sandbox, "epic", "lindqvist")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    assert rig.drain() == ["written"]
    assert history(rig.sandbox, "epic", appt) == ["Connected"]
    assert rig.sandbox.epic.writes.get(appt).accepted[0]["via"] == "service-account:emp$TELEHEALTH"


# --- idempotency and order ---------------------------------------------------------------------
def test_the_same_job_twice_is_one_write_and_a_stale_job_is_skipped(rig):
    endpoint = rig.endpoint("cerner")
    appt = appointment(rig.sandbox, "cerner")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    (job,) = rig.jobs()
    assert rig.worker.handle(job, 1, MAX_DEQUEUE) == "written"
    assert rig.worker.handle(job, 2, MAX_DEQUEUE) == "skipped"  # a redelivery
    rig.event(key, "joined", 30)
    rig.drain()
    late = WritebackJob.new(key, endpoint, "connected", job.rank)  # a late, lower-ranked job
    assert rig.worker.handle(late, 1, MAX_DEQUEUE) == "skipped"
    assert history(rig.sandbox, "cerner", appt) == ["arrived", "checked-in"]


def test_events_out_of_order_give_the_later_milestone(rig):
    endpoint = rig.endpoint("epic")
    appt = appointment(rig.sandbox, "epic")
    key = rig.visit(endpoint, appt)
    rig.event(key, "left", 600)  # heard first, happened last
    rig.event(key, "arrived", 0)
    rig.event(key, "joined", 30)
    rig.drain()
    assert rig.sandbox.epic.writes.get(appt).connection == "Disconnected"


# --- failures ----------------------------------------------------------------------------------
def test_429_goes_back_on_the_queue_with_retry_after(rig):
    endpoint = rig.endpoint("epic")
    key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
    rig.event(key, "arrived", 0)
    (job,) = rig.jobs()
    rig.sandbox.inject(family="ehr-writeback", status=429, retry_after=7, count=1)
    assert rig.worker.handle(job, 1, MAX_DEQUEUE) == "delayed"
    assert rig.jobs() == []  # invisible for the EHR's 7 s
    assert rig.raw_queue.get_queue_properties().approximate_message_count == 1
    assert rig.progress.get(key).lease_job is None  # the lease was given back


def test_transient_failures_are_retried_then_dead_lettered_on_the_last_attempt(rig):
    endpoint = rig.endpoint("cerner")
    appt = appointment(rig.sandbox, "cerner")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    (job,) = rig.jobs()
    rig.sandbox.inject(family="ehr-writeback", status=500, count=MAX_DEQUEUE)
    for attempt in range(1, MAX_DEQUEUE):
        with pytest.raises(TransientWriteFailure):
            rig.worker.handle(job, attempt, MAX_DEQUEUE)
    assert rig.worker.handle(job, MAX_DEQUEUE, MAX_DEQUEUE) == "dead-lettered"
    (failure,) = rig.failures.list(endpoint_id=endpoint).items
    assert failure.code == "WB-EHR-UNAVAILABLE" and failure.attempts == MAX_DEQUEUE
    assert "HTTP 500" in failure.detail and failure.http_status == 500
    assert history(rig.sandbox, "cerner", appt) == []
    # the admin replays it once the EHR is back: it is written
    rig.failures.replay(failure.id, ACTOR, rig.queue)
    assert rig.drain() == ["written"]
    assert history(rig.sandbox, "cerner", appt) == ["arrived"]
    replayed = rig.failures.get(failure.id)
    assert replayed.replayed_by == ACTOR.oid and replayed.replay_job_id


def test_a_timeout_is_transient(rig):
    endpoint = rig.endpoint("epic")
    key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
    rig.event(key, "arrived", 0)
    (job,) = rig.jobs()
    rig.sandbox.inject(family="ehr-writeback", kind="hang", seconds=4, count=1)
    with pytest.raises(TransientWriteFailure):
        rig.worker.handle(job, 1, MAX_DEQUEUE)
    assert rig.worker.handle(job, 2, MAX_DEQUEUE) == "written"  # the lease was given back


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_permanent_errors_are_dead_lettered_at_once(rig, status):
    endpoint = rig.endpoint("epic")
    key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
    rig.event(key, "arrived", 0)
    rig.sandbox.inject(family="ehr-writeback", status=status, count=1)
    assert rig.drain() == ["dead-lettered"]
    (failure,) = rig.failures.list(endpoint_id=endpoint).items
    assert failure.code == "WB-EHR-REFUSED" and failure.attempts == 1
    assert failure.detail.startswith(f"epic status: HTTP {status}")


def test_a_401_gets_one_new_token_then_is_permanent(rig):
    endpoint = rig.endpoint("cerner")
    appt = appointment(rig.sandbox, "cerner")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    (job,) = rig.jobs()
    rig.sandbox.inject(family="ehr-writeback", status=401, count=1)
    assert rig.worker.handle(job, 1, MAX_DEQUEUE) == "written"
    tokens = [e for e in rig.sandbox.journal.entries() if e.path.endswith("/token")]
    assert len(tokens) == 3  # validation's, the first write's, the one after the 401
    rig.event(key, "joined", 30)
    rig.sandbox.inject(family="ehr-writeback", status=401, count=2)
    assert rig.drain() == ["dead-lettered"]
    failure = rig.failures.list(endpoint_id=endpoint).items[0]
    assert failure.code == "WB-TOKEN-REFUSED"


def test_a_version_conflict_is_read_again_and_applied_again(rig):
    endpoint = rig.endpoint("cerner")
    appt = appointment(rig.sandbox, "cerner")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    rig.sandbox.inject(family="ehr-writeback", method="PATCH", status=409, count=1)
    assert rig.drain() == ["written"]
    reads = [
        e
        for e in rig.sandbox.journal.entries()
        if e.method == "GET" and e.path.endswith(f"/Appointment/{appt}")
    ]
    assert len(reads) == 2 and history(rig.sandbox, "cerner", appt) == ["arrived"]


def test_a_real_version_conflict_from_another_writer(rig, sandbox_http):
    """Someone else changes the appointment between our read and our PATCH: the stand-in's
    own 409 (If-Match stale), answered by reading again."""
    endpoint = rig.endpoint("cerner")
    appt = appointment(rig.sandbox, "cerner")
    key = rig.visit(endpoint, appt)
    rig.sandbox.cerner.writes.record(appt, "status", "booked", "someone")  # version 1 -> 1
    rig.sandbox.cerner.writes.record(appt, "status", "pending", "someone")  # version 2
    rig.event(key, "arrived", 0)
    assert rig.drain() == ["written"]
    assert rig.sandbox.cerner.writes.get(appt).status == "arrived"


def test_replay_after_a_later_write_never_moves_the_ehr_backwards(rig):
    endpoint = rig.endpoint("epic")
    appt = appointment(rig.sandbox, "epic")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    rig.sandbox.inject(family="ehr-writeback", status=403, count=1)
    assert rig.drain() == ["dead-lettered"]
    rig.event(key, "joined", 30)
    assert rig.drain() == ["written"]
    (failure,) = rig.failures.list(endpoint_id=endpoint).items
    rig.failures.replay(failure.id, ACTOR, rig.queue)
    assert rig.drain() == ["skipped"]
    assert history(rig.sandbox, "epic", appt) == ["InVisit"]


def test_no_appointment_and_write_back_off_are_dead_lettered_with_reasons(rig):
    endpoint = rig.endpoint("epic")
    key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
    rig.sealed.forget(key)  # e.g. an Encounter-only launch: nothing sealed
    rig.event(key, "arrived", 0)
    assert rig.drain() == ["dead-lettered"]
    assert rig.failures.list(endpoint_id=endpoint).items[0].code == "WB-NO-APPOINTMENT"


def test_poison_messages_are_swept_into_the_dead_letter_table(rig):
    endpoint = rig.endpoint("epic")
    key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
    job = WritebackJob.new(key, endpoint, "connected", 1)
    for text in (job.to_text(), "{not a job"):
        rig.poison.send_message(base64.b64encode(text.encode()).decode())
    assert rig.sweep.run() == 2 and rig.sweep.run() == 0
    found = {f.code: f for f in rig.failures.list().items}
    assert set(found) == {"WB-EHR-UNAVAILABLE", "WB-POISON"}
    with pytest.raises(AppError) as refused:
        rig.failures.replay(found["WB-POISON"].id, ACTOR, rig.queue)
    assert refused.value.code == "WB-REPLAY-REFUSED"
    rig.failures.replay(found["WB-EHR-UNAVAILABLE"].id, ACTOR, rig.queue)
    assert rig.drain() == ["written"]


def test_failures_list_by_endpoint_and_time_in_pages(rig):
    endpoint = rig.endpoint("epic")
    for n in range(3):
        key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
        rig.failures.add(
            WritebackJob.new(key, endpoint, "connected", n + 1),
            WriteFailure.permanent("WB-EHR-REFUSED", "epic status: HTTP 400"),
            attempts=1,
        )
    first = rig.failures.list(endpoint_id=endpoint, size=2)
    assert len(first.items) == 2 and first.next
    rest = rig.failures.list(endpoint_id=endpoint, size=2, continuation=first.next)
    assert len(rest.items) == 1 and rest.next is None
    newest_first = [f.failed_at for f in first.items + rest.items]
    assert newest_first == sorted(newest_first, reverse=True)
    assert (
        rig.failures.list(endpoint_id=endpoint, since=datetime.now(UTC) + timedelta(1)).items == []
    )
    assert len(rig.failures.list(until=datetime.now(UTC) + timedelta(1)).items) == 3


def test_dead_letters_are_purged_after_they_are_kept_for_long_enough(rig):
    endpoint = rig.endpoint("epic")
    key = rig.visit(endpoint, appointment(rig.sandbox, "epic"))
    row = rig.failures.add(
        WritebackJob.new(key, endpoint, "connected", 1),
        WriteFailure.permanent("WB-EHR-REFUSED", "epic status: HTTP 400"),
        attempts=1,
    )
    assert rig.failures.purge_expired(row.failed_at + KEPT_FOR - timedelta(minutes=1)) == 0
    assert rig.failures.purge_expired(row.failed_at + KEPT_FOR + timedelta(minutes=1)) >= 1
    assert all(f.visit_key != key for f in rig.failures.list(endpoint_id=endpoint).items)


# --- backend services at validation ------------------------------------------------------------
def test_validation_refuses_an_unknown_backend_client(rig):
    endpoint = rig.endpoint("cerner")
    auth = {"method": "backend_services", "client_id": "not-registered", "alg": "RS384"}
    updated = rig.endpoints.update(
        endpoint,
        EndpointUpdate(writeback={"enabled": True, "auth": auth}),
        rig.endpoints.get(endpoint).etag,
        ACTOR,
    )
    codes = [p.code for p in updated.validation.problems]
    assert codes == ["WB-BACKEND-TOKEN-FAILED"]
    off = rig.endpoints.update(
        endpoint, EndpointUpdate(writeback={"enabled": True}), updated.etag, ACTOR
    )
    assert [p.code for p in off.validation.problems] == ["WB-AUTH-MISSING"]


# --- privacy -----------------------------------------------------------------------------------
def test_nothing_queued_or_logged_identifies_the_patient(rig, caplog):
    """What the app logs at the levels it runs with (the sandbox's own log is the EHR's)."""
    caplog.set_level(logging.INFO)
    endpoint = rig.endpoint("cerner")
    ehr = rig.sandbox.cerner
    slot = ehr.chart.slots(clinician="reyes")[0]
    appt, patient = ehr.chart.id_of(slot), ehr.chart.patient(slot.patient)
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    texts = [m.content for m in rig.raw_queue.peek_messages(max_messages=32)]
    rig.sandbox.inject(family="ehr-writeback", status=422, count=1)
    rig.drain()
    stored = [f.model_dump_json() for f in rig.failures.list().items]
    logged = [r.getMessage() + repr(r.__dict__) for r in caplog.records if r.name[:4] != "dev."]
    assert any("write-back" in text for text in logged)
    secrets_ = [appt, patient.name, ehr.chart.id_of(patient)]
    for blob in texts + stored + logged:
        for value in secrets_:
            assert value not in blob


def test_a_visit_another_job_is_writing_waits_and_a_dead_workers_lease_runs_out(rig):
    endpoint = rig.endpoint("epic")
    appt = appointment(rig.sandbox, "epic")
    key = rig.visit(endpoint, appt)
    rig.event(key, "arrived", 0)
    (job,) = rig.jobs()
    # a worker that died while it held the visit's lease (for a short one here)
    rig.progress.lease(key, endpoint, rig.progress.get(key), "f" * 32, seconds=1.5)
    assert rig.worker.handle(job, 1, MAX_DEQUEUE) == "delayed"
    assert list(rig.raw_queue.peek_messages()) == []  # hidden until the lease runs out
    time.sleep(2.0)
    assert rig.worker.handle(job, 1, MAX_DEQUEUE) == "written"
    assert history(rig.sandbox, "epic", appt) == ["Connected"]
