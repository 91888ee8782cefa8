"""The privacy suite (SPEC F20): after the whole demo journey on a real stack, no patient's name,
birth date, phone number, MRN or FHIR id, nor a clinician's name where it is not needed, is in
clear in any table, queue (poison queues too) or log line; the sealed values are counted and
gone after the cleanup timer's run past their purge time; and a leak seeded on purpose is found,
with where.

The scan is generic: every table under the app's prefix and every queue of the account (its own
Azurite), so tables and queues added later are covered the day they land. The needles come from
the sandbox's chart (tests/privacy/scan.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import time
import uuid
from collections import Counter

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.queue import QueueServiceClient

from dev.stack import running
from tests.privacy import journey as journeys
from tests.privacy import scan

PREFIX = "privacy"
TELEMETRY_SETTINGS = ("APPLICATIONINSIGHTS_", "OTEL_")
pytestmark = pytest.mark.timeout(600)

# Where a needle may stand, and why (a clinician's own name is what an admin needs to recognise
# a mapping; a patient's never is).
ALLOWED = [
    scan.Allowed(
        scan.FHIR_ID,
        f"table {PREFIX}Config (ep-*, *).*",
        "an Epic endpoint's approval names the EHR user who signed in to approve it (the "
        "analyst's own Practitioner reference: the approval's evidence, in it and its audit entry)",
        label="practitioner *",
    ),
]


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    from lib.bootstrap import build
    from lib.settings import load_settings

    # DEBUG: the most the app ever writes. The texts timer runs here, with a clock (the host's
    # own would race it for the same texts): once a year on the host.
    overrides = {"CONNECTOR_LOG_LEVEL": "DEBUG", "SMS_TIMER_SCHEDULE": "0 0 0 1 1 *"}
    # The host traces to the sandbox's Application Insights; the services in this process do
    # not (tracing is process-wide: it would follow every later test of the session).
    with (
        pytest.MonkeyPatch.context() as env,
        running(PREFIX, overrides=overrides, telemetry=True) as stack,
    ):
        env.setenv("REQUESTS_CA_BUNDLE", str(stack.sandbox.ca_file))
        env.delenv("CURL_CA_BUNDLE", raising=False)
        here = {k: v for k, v in stack.env.items() if not k.startswith(TELEMETRY_SETTINGS)}
        j = journeys.Journey(
            stack, build(load_settings(here)), journeys.Clock(), tmp_path_factory.mktemp("engine")
        )
        watcher = journeys.QueueWatcher(stack.storage)
        journeys.run(j, watcher)
        j.watched = watcher.seen
        yield j


@pytest.fixture
def scanner() -> scan.Scanner:
    return scan.Scanner(allowed=ALLOWED)


def tables(j) -> TableServiceClient:
    return TableServiceClient.from_connection_string(j.stack.storage)


def queues(j) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(j.stack.storage)


def log_findings(j, scanner: scan.Scanner) -> list[scan.Finding]:
    return scanner.lines(j.stack.host.log().splitlines(), "host") + scanner.lines(
        j.logs, "in-process"
    )


@pytest.mark.parametrize("step", [s for s in journeys.STEPS if s.needs], ids=lambda s: s.name)
def test_every_part_of_the_journey_ran(journey, step):
    assert {s.name for s in journeys.STEPS if not s.needs} <= set(journey.done)
    if step.name in journey.skipped:
        pytest.skip(f"{step.name}: {journey.skipped[step.name]}")
    assert step.name in journey.done


def test_no_table_holds_personal_data(journey, scanner):
    found = scanner.tables(tables(journey), PREFIX)
    assert found == [], scan.report(found)
    # Not a vacuous pass: the journey wrote the launch's, the texts' and the intake's rows.
    assert scanner.looked_at["tables"] >= 8 and scanner.looked_at["rows"] >= 30, scanner.looked_at
    print("tables scanned:", scanner.looked_at, "sealed values:", scanner.sealed)


def test_no_queue_message_holds_personal_data(journey, scanner):
    found = [f for (q, mid), body in journey.watched.items() for f in scanner.message(q, mid, body)]
    found += scanner.queues(queues(journey))  # what is left, poison queues included
    assert found == [], scan.report(found)
    seen = Counter(q for q, _ in journey.watched)
    assert seen["visit-events"] >= 3, seen  # the launches' and Graph's events, seen in flight
    print("queue messages seen in flight:", dict(seen), "scanned:", scanner.looked_at)


def test_no_log_line_holds_personal_data(journey, scanner):
    found = log_findings(journey, scanner)
    assert found == [], scan.report(found)
    assert scanner.looked_at["log lines"] >= 100, scanner.looked_at
    print("log lines scanned:", scanner.looked_at)


def telemetry(j) -> list[dict]:
    """What the host exported to the sandbox's Application Insights, once all of it arrived (the
    exporter sends a batch every quarter second: two quiet seconds mean it is done)."""
    insights = j.stack.sandbox.insights
    count, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 2:
        if len(insights.snapshot()) != count:
            count, quiet_since = len(insights.snapshot()), time.monotonic()
        time.sleep(0.2)
    return insights.snapshot()


def test_no_telemetry_item_holds_personal_data(journey, scanner):
    items = telemetry(journey)
    found = scanner.telemetry(items)
    assert found == [], scan.report(found)
    assert len(items) >= 200, len(items)  # the journey's calls, traced: not a vacuous pass
    print("telemetry items scanned:", Counter(i["name"].rsplit(".", 1)[-1] for i in items))


def test_telemetry_has_no_log_records_and_no_query_strings(journey):
    """Logs keep their one path (the host's, redacted); URLs lose queries and fragments."""
    items = telemetry(journey)
    kinds = Counter(i["name"].rsplit(".", 1)[-1] for i in items)
    assert kinds["Message"] == 0 and kinds["RemoteDependency"] > 0, kinds
    urls = [i["data"]["baseData"].get("data") or i["data"]["baseData"].get("url") or ""
            for i in items if i["name"].endswith(("RemoteDependency", "Request"))]  # fmt: skip
    called = [u for u in urls if u.startswith("http")]
    assert called and not [u for u in called if "?" in u or "#" in u]
    assert any("/{id}" in u for u in called)  # ids in paths hidden, not just queries


def test_one_trace_runs_from_a_launch_through_its_events_to_the_ehr_write_back(journey):
    """Each launch's calls (the EHR's token endpoint, Graph's meeting) and the visit event it
    queued share its trace; the write-back job an event queued, and the job's call to Epic, sit
    in that event's trace, each the child of the one before: a queue message carries its
    sender's traceparent, so a visit's path through the queues is one operation."""
    items = telemetry(journey)
    by_id = {_base(i).get("id"): i for i in items}

    def calls(fragment: str) -> list[dict]:
        return [i for i in items if i["name"].endswith("RemoteDependency")
                and fragment in _base(i).get("data", "")]  # fmt: skip

    events, jobs = (
        [i for i in items if _base(i).get("name") == f"process {queue}"]
        for queue in ("visit-events", "ehr-writeback")
    )
    token, meeting = calls("/epic/oauth2/token"), calls("/onlineMeetings/createOrGet")
    status = calls("/ContextLinking/SetExternalConnectionStatus")
    assert token and meeting and status and events and jobs, "the journey's calls were traced"
    # A launch's own calls and the event it queued: children of the same request.
    launched = {_parent(v) for v in events}
    assert launched & {_parent(t) for t in token} and launched & {_parent(m) for m in meeting}
    # The write-back's call to Epic <- its job's processing <- the event's processing <- the
    # request that sent the event, which made calls of its own in the same trace.
    chains = [_ancestry(c, by_id) for c in status]
    assert any(
        [_base(x).get("name") for x in chain[1:3]]
        == ["process ehr-writeback", "process visit-events"]
        and len({_trace(x) for x in chain}) == 1
        and any(_parent(i) == _parent(chain[2]) and i is not chain[2] for i in items)
        for chain in chains
    ), [[(_base(x).get("name"), _parent(x)) for x in chain] for chain in chains]


def _ancestry(item: dict | None, by_id: dict) -> list[dict]:
    found = []
    while item is not None and len(found) < 10:
        found.append(item)
        item = by_id.get(_parent(item))
    return found


def _base(item: dict) -> dict:
    return item["data"]["baseData"]


def _parent(item: dict) -> str:
    return item["tags"].get("ai.operation.parentId", "")


def _trace(item: dict) -> str:
    return item["tags"].get("ai.operation.id", "")


def test_sealed_values_are_counted_and_gone_after_cleanup(journey, scanner):
    svc = journey.svc
    scanner.tables(tables(journey), PREFIX)
    sealed_table = f"{PREFIX}Sealed"
    rows = list(tables(journey).get_table_client(sealed_table).list_entities())
    purposes = Counter(r["RowKey"] for r in rows)
    # Two phones (the SIU's and the FHIR message's patients), the launches' appointment ids.
    assert purposes["phone"] >= 2 and purposes["appointment-id"] >= 2, purposes
    assert scanner.sealed.get(sealed_table) == len(rows), scanner.sealed
    assert set(scanner.sealed) == {sealed_table}, f"sealed values elsewhere: {scanner.sealed}"
    # The timer now takes none of them: each is needed until its purge time ...
    assert svc.sealed.purge_expired() == 0
    # ... and past the last purge time, every one.
    after = max(r["purge_after"] for r in rows) + dt.timedelta(minutes=1)
    assert svc.sealed.purge_expired(now=after) == len(rows)
    svc.sessions.purge_expired(now=after)
    from lib.sms.cleanup import purge

    purge(svc.store, now=after + dt.timedelta(days=3))
    left = scan.Scanner(allowed=ALLOWED)
    assert left.tables(tables(journey), PREFIX) == []
    assert left.sealed == {}, left.sealed


def test_a_seeded_leak_is_found_with_where(journey, scanner):
    """One leak of each kind, as a careless change would make them: each found, with where."""
    import logging

    service = tables(journey)
    visits = service.get_table_client(f"{PREFIX}Visits")
    visit = visits.get_entity(journey.visits["epic"], "visit")
    leak_table = service.create_table_if_not_exists(f"{PREFIX}Leak{uuid.uuid4().hex[:6]}")
    poison = queues(journey).get_queue_client("visit-events-poison")
    with contextlib.suppress(ResourceExistsError):
        poison.create_queue()
    lines: list[str] = []
    try:
        visits.upsert_entity({**visit, "note": "called Ms RIVERA"}, mode=UpdateMode.MERGE)
        leak_table.create_entity({"PartitionKey": "p", "RowKey": "r", "born": "03/12/1984"})
        body = base64.b64encode(b'{"visit_key": "x", "mrn": "E4001"}').decode()
        sent = poison.send_message(body)
        with journeys.captured_logs(lines):  # digits read out one by one: no redaction knows it
            logging.getLogger("lib.sms.intake").info("number read back as 5 5 5 5 5 5 0 1 0 1")
        exported = {
            "name": "Microsoft.ApplicationInsights.RemoteDependency",
            "tags": {},
            "data": {"baseData": {"data": "https://ehr.example/fhir/Patient?name=Rivera"}},
        }
        found = scanner.tables(service, PREFIX) + scanner.queues(queues(journey))
        found += scanner.lines(lines, "in-process") + scanner.telemetry([exported])
    finally:
        visits.update_entity(visit, mode=UpdateMode.REPLACE)
        service.delete_table(leak_table.table_name)
        poison.delete_message(sent.id, sent.pop_receipt)
    where = {(f.kind, f.where.split(" (")[0].split(" #")[0].rsplit(":", 1)[0]) for f in found}
    assert where == {
        (scan.PATIENT_NAME, f"table {PREFIX}Visits"),
        (scan.BIRTH_DATE, f"table {leak_table.table_name}"),
        (scan.MRN, "queue visit-events-poison"),
        (scan.PHONE, "log in-process"),
        (scan.PATIENT_NAME, "telemetry RemoteDependency"),
    }, scan.report(found)
    assert any(f.where.endswith(".note") and "RIVERA" in f.excerpt for f in found)
