"""`python -m bench capacity`: what one app instance sustains here, and the capacity model of
docs/capacity.md computed from it.

Measured, on one app host (dev.host: one Python process, threaded, like one Functions instance's
worker) with Azurite and the sandbox on the same machine (at L = 0: the stand-ins answer at once):

1. **Launch rate.** A closed loop of C browsers, each launching over and over for a few seconds:
   a clinician's provider launch into an existing visit (launch URL, EHR authorize, callback,
   visit page, the page's status fetch) and a patient's launch into its lobby, alternating. C
   steps up; the *sustainable* rate is the highest throughput with no failed launch and a 95th
   percentile under ``P95_BUDGET``. Azurite, the sandbox and the load itself share the CPUs with
   the app, so this is a floor for a Functions instance, not a ceiling.
2. **Storage round trips per launch**, read from the bench's probes (bench/probes.py) over a few
   sequential launches of each kind: what the model multiplies by the launch rate.
3. **Visit-event apply rate through the queue.** N events (over V visits) are put on
   `visit-events`; the host's queue trigger (host.json's batchSize) applies them through Azurite;
   the rate is N over the time until the queue is empty.

4. **Texts a second one run of the texts timer sends**, to the Communication Services stand-in.

bench/capacity_model.py turns those figures into docs/capacity.md's numbers: printed after a
run; `python -m bench capacity --model-only` prints them from the figures the doc was last
written with (``RECORDED`` there; `make docs` writes its table from them).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import launch as launches
from bench.capacity_model import RECORDED, Measured, model
from dev.browser import Browser

P95_BUDGET = 2.0  # seconds: a launch that takes longer is not "sustained"
STEPS = (1, 2, 4, 8, 12)  # concurrent browsers
STEP_SECONDS = 8.0
EVENTS, EVENT_VISITS = 400, 40
TEXTS = 150  # under the sandbox's 200 a minute from one number, like the real service's
SLOT = "reyes-0900"


# --- measuring ----------------------------------------------------------------------------


def _patient_url(stack: Any) -> str:
    minted = stack.sandbox.epic.mint_launch("patient", appointment=SLOT)
    from urllib.parse import urlencode

    query = urlencode({"iss": minted.iss, "launch": minted.token})
    return f"{stack.url}/api/launch/{launches.EPIC}/patient?{query}"


def _one(stack: Any, browser: Browser, patient: bool) -> bool:
    if patient:
        outcome = browser.go(_patient_url(stack))
        return "/graph/" in outcome.url
    url = launches.launch_url(stack, launches.EPIC, "epic", "reyes", SLOT)
    outcome = browser.go(url)
    if outcome.response.status_code != 200 or "/api/visit#" not in outcome.url:
        return False
    launches.visit_data(browser, outcome)
    return True


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc: what the load beside it on a
    shared machine inflates least."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def launch_rate(stack: Any) -> tuple[float, int, float, str, float]:
    """The sustainable launch rate (closed loop, C browsers, stepped), and the app process's
    CPU milliseconds a launch over all the steps."""
    warm = Browser(stack.sandbox, entra_user="reyes")
    if not _one(stack, warm, patient=False):  # the one-time Microsoft sign-in, and warm caches
        raise RuntimeError("the warm-up launch failed")
    best = (0.0, 0, 0.0)
    curve = []
    cpu_before, done = cpu_seconds(stack.host.proc.pid), 0
    for concurrency in STEPS:
        times: list[float] = []
        failures = [0]
        lock = threading.Lock()
        deadline = time.monotonic() + STEP_SECONDS

        def loop(i: int, deadline: float = deadline, times: list[float] = times,
                 failures: list[int] = failures, lock: threading.Lock = lock) -> None:  # fmt: skip
            browser = Browser(stack.sandbox, entra_user="reyes")
            n = i
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    ok = _one(stack, browser, patient=n % 2 == 1)
                except Exception:
                    ok = False
                with lock:
                    times.append(time.perf_counter() - started) if ok else None
                    failures[0] += 0 if ok else 1
                n += 1
            browser.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        rate, done = len(times) / wall, done + len(times) + failures[0]
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 20 else max(times, default=0)
        curve.append(f"C={concurrency}: {rate:.1f}/s p95 {p95:.2f}s" +
                     (f" {failures[0]} failed" if failures[0] else ""))  # fmt: skip
        if not failures[0] and p95 <= P95_BUDGET and rate > best[0]:
            best = (rate, concurrency, p95)
    warm.close()
    cpu_ms = (cpu_seconds(stack.host.proc.pid) - cpu_before) * 1000 / max(done, 1)
    return (*best, "; ".join(curve), cpu_ms)


def storage_per_launch(stack: Any) -> float:
    """Storage round trips of a provider and of a patient launch (probes), averaged."""
    counts = []
    browser = Browser(stack.sandbox, entra_user="reyes")
    for _ in range(3):
        url = launches.launch_url(stack, launches.EPIC, "epic", "reyes", SLOT)
        run = launches.launch(stack, browser, url)
        counts.append(sum(h.probe.counts.get("storage", 0) for h in run.hops if h.probe))
    provider = statistics.median(counts)
    # The patient's launch ends at the meeting (not a page of ours): its hops are the launch
    # URL and the callback; count them from the host's probe lines.
    log_at = len(stack.host.log())
    for _ in range(3):
        browser.go(_patient_url(stack))
    from bench import probes

    found = [p for p in probes.parse(stack.host.log()[log_at:]) if "/api/launch" in p.path]
    patient = sum(p.counts.get("storage", 0) for p in found) / 3
    browser.close()
    return (provider + patient) / 2


def event_rate(stack: Any) -> float:
    """Events a second the host's queue trigger applies, through Azurite."""
    from azure.storage.queue import QueueServiceClient

    from lib.bootstrap import build
    from lib.settings import load_settings
    from lib.visits.events import VisitEventMessage

    svc = build(load_settings(stack.env))
    queue = QueueServiceClient.from_connection_string(stack.storage).get_queue_client(
        "visit-events"
    )
    kinds = (("arrived", "patient"), ("lobby", "patient"), ("joined", "provider"),
             ("joined", "patient"), ("left", "patient"), ("left", "provider"),
             ("ended", "visit"), ("measured", "visit"), ("arrived", "provider"),
             ("lobby", "patient"))  # fmt: skip
    keys = [f"capacity{i:04d}{'0' * 24}" for i in range(EVENT_VISITS)]
    started = time.perf_counter()
    for n in range(EVENTS):
        kind, role = kinds[(n // EVENT_VISITS) % len(kinds)]
        svc.events.publish(VisitEventMessage.new(keys[n % EVENT_VISITS], kind, role, "graph"))
    while queue.get_queue_properties().approximate_message_count:
        if time.perf_counter() - started > 300:
            raise RuntimeError("the queue did not drain within 5 minutes")
        time.sleep(0.1)
    return EVENTS / (time.perf_counter() - started)


def texting_rate(stack: Any) -> float:
    """Texts a second one run of the texts timer sends (it sends one after the other), to the
    sandbox's Communication Services: TEXTS confirmations due now, from one number."""
    import datetime as dt
    import os
    import uuid

    from lib.bootstrap import build
    from lib.endpoints.actor import Actor
    from lib.settings import load_settings
    from lib.sms.models import ConsentGrant, NumberLinks, SmsSettingsUpdate
    from lib.visits.store import Visit

    os.environ["REQUESTS_CA_BUNDLE"] = str(stack.sandbox.ca_file)  # the SDK's requests
    svc = build(load_settings(stack.env))
    admin = Actor(oid="00000000-0000-4000-8000-0000000000a1", name="Bench Admin")
    svc.sms.grant(ConsentGrant(sends_on_behalf_of_organization=True, attendees_consented=True),
                  None, admin)  # fmt: skip
    svc.sms.link("+18335550100", NumberLinks(endpoints=[launches.EPIC]), None, admin)
    current = svc.sms.settings(launches.EPIC)
    update = {"enabled": True, "organization_name": "Bench Clinic",
              "quiet_hours": {"start": "00:00", "end": "00:00"}}  # fmt: skip
    svc.sms.update_settings(launches.EPIC, SmsSettingsUpdate.model_validate(update),
                            current.etag, admin)  # fmt: skip
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for i in range(TEXTS):
        start = now + dt.timedelta(hours=2)
        visit = Visit(
            partition_key=uuid.uuid4().hex, row_key="visit", endpoint_id=launches.EPIC,
            organizer_oid="", start=start, end=start + dt.timedelta(minutes=30),
            created_at=now, created_by_role="schedule", schedule_version=1,
        )  # fmt: skip
        svc.visits.claim(visit)
        svc.sealed.put(visit.key, "phone", f"+1555556{i:04d}", start + dt.timedelta(days=1))
        svc.texting.plan(visit, "booked")
    started = time.perf_counter()
    report = svc.texting.run()
    seconds = time.perf_counter() - started
    if report.sent != TEXTS:
        raise RuntimeError(f"{report.sent} of {TEXTS} texts sent: {report.outcomes}")
    return TEXTS / seconds


def measure() -> Measured:
    # The host's own texts timer stays quiet (once a year): the bench's run is the only sender.
    with launches.running("capacity", {"SMS_TIMER_SCHEDULE": "0 0 0 1 1 *"}) as stack:
        rate, concurrency, p95, curve, cpu_ms = launch_rate(stack)
        ops = storage_per_launch(stack)
        events = event_rate(stack)
        texts = texting_rate(stack)
    return Measured(
        rate, concurrency, p95, ops, events, texts, time.strftime("%Y-%m-%d"), curve, cpu_ms
    )


def run(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    measured = RECORDED if argv and "--model-only" in argv else measure()
    rows = [
        ("capacity: launches/s one instance sustains", f"{measured.launches_per_s:.1f}/s",
         f"p95 <= {P95_BUDGET} s, no failure, at C={measured.at_concurrency}; {measured.curve}"),
        ("capacity: the app's CPU a launch", f"{measured.cpu_ms_per_launch:.0f} ms",
         "the host process's user + system time over every launch of the steps (its HTTP and "
         "TLS, the queue trigger's events included)"),
        ("capacity: storage round trips a launch", f"{measured.storage_ops_per_launch:.1f}",
         "provider and patient launch, averaged"),
        ("capacity: visit events/s one instance applies", f"{measured.events_per_s:.0f}/s",
         f"{EVENTS} events over {EVENT_VISITS} visits through the queue"),
        ("capacity: texts/s one timer run sends", f"{measured.texts_per_s:.0f}/s",
         f"{TEXTS} confirmations due at once, to the Communication Services stand-in"),
    ]  # fmt: skip
    rows += [(f"model: {label}", value, note) for label, value, note in model(measured)]
    print(f"measured: {measured!r}", file=sys.stderr)
    return rows
