"""The whole demo journey against a real stack, step by step, for the privacy suite to scan after.

Each step is a function of the ``Journey`` in ``STEPS``, run in order. A step for a part that is
not on this branch yet names the module it needs (``needs``) and is skipped, recorded in
``journey.skipped``, until that module exists (a step may also return why it cannot run yet):
adding a part is one more function and one more row.

What the services run in this process (the timer runs with a clock, cleanup past the purge time)
logs through the app's own redaction into ``journey.logs``, like the host's log file.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from dev.browser import Browser, Outcome
from dev.sandbox.ehr import data
from dev.sandbox.ehr import scheduling as engine
from dev.stack import Stack
from lib.logs import NOISY_LOGGERS, JsonFormatter, RedactionFilter

EPIC, CERNER = "epic-sandbox-test", "cerner-sandbox-test"  # what dev/seed.py registers
NUMBER = "+18335550100"  # the sandbox's toll-free number
RIVERA, WHITFIELD = (next(p for p in data.PATIENTS if p.key == k) for k in ("rivera", "whitfield"))
REMINDER_MINUTES = 15


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)
    return result


@contextmanager
def captured_logs(into: list[str]) -> Iterator[None]:
    """Every record of this process, redacted and formatted as the app writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_AppRecords())
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *NOISY_LOGGERS)}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for noisy in NOISY_LOGGERS:  # as lib.logs.configure_logging leaves them in the app
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        into.extend(stream.getvalue().splitlines())


class _AppRecords(logging.Filter):
    """The sandbox runs in this process too: its records are the outside parties', not ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("dev.sandbox", "werkzeug"))


class QueueWatcher:
    """Peeks at every queue of the account every 50 ms while the journey runs, and keeps each
    message it sees: the host takes them within a poll (100 ms to 2 s), so most are seen in
    flight, not only what is left at the end."""

    def __init__(self, connection_string: str) -> None:
        from azure.storage.queue import QueueServiceClient

        self._service = QueueServiceClient.from_connection_string(connection_string)
        self.seen: dict[tuple[str, str], str] = {}  # (queue, message id) -> content
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            try:
                for queue in self._service.list_queues():
                    client = self._service.get_queue_client(queue.name)
                    for m in client.peek_messages(max_messages=32):
                        self.seen[(queue.name, m.id)] = m.content
            except Exception:  # a queue deleted or a busy Azurite: look again next time
                logging.getLogger(__name__).debug("queue watch missed a round")

    def __enter__(self) -> QueueWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Clock:
    def __init__(self) -> None:
        self.now: dt.datetime | None = None  # None: the real time

    def __call__(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC)


@dataclass
class Journey:
    stack: Stack
    svc: Any  # lib.bootstrap.Services, built in this process from the app's settings
    clock: Clock
    engine_dir: Path  # the interface engine's key and certificate
    logs: list[str] = field(default_factory=list)  # this process's log lines
    done: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # step -> the module it waits for
    visits: dict[str, str] = field(default_factory=dict)  # "epic" / "cerner" -> visit key
    pages: dict[str, Outcome] = field(default_factory=dict)
    start: dt.datetime | None = None  # the texted appointment's start (the SIU's)

    # -- helpers --------------------------------------------------------------------------
    def session(self, role: str | None = None) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.stack.sandbox.ca_file)
        if role:
            from dev.sandbox.directory import ROLE_VALUES

            token = self.stack.sandbox.entra.mint(roles=[ROLE_VALUES[role]], user=role)
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    def api(self, path: str) -> str:
        return f"{self.stack.url}/api/{path}"

    def launch_url(self, vendor: str, endpoint: str, kind: str, **mint: str) -> str:
        minted = getattr(self.stack.sandbox, vendor).mint_launch(kind, **mint)
        query = urlencode({"iss": minted.iss, "launch": minted.token})
        return f"{self.api(f'launch/{endpoint}/{kind}')}?{query}"

    def status(self, vendor: str) -> dict[str, Any]:
        token = urlsplit(self.pages[vendor].url).fragment
        answer = self.session().get(
            self.api("visit/status"), headers={"X-Visit-Token": token}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def slot_id(self, vendor: str, slot: str) -> str:
        return next(s for s in data.SLOTS if s.key == slot).ids[vendor]


def visit_key_of(page: Outcome) -> str:
    payload = urlsplit(page.url).fragment.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["v"]


# -- the steps -------------------------------------------------------------------------------


def launches(j: Journey) -> None:
    """A clinician launches from each EHR (the first time through the Microsoft sign-in), then
    the patient launches from the portal and lands in the lobby."""
    for vendor, endpoint, clinician, slot in (
        ("epic", EPIC, "reyes", "reyes-0900"),
        ("cerner", CERNER, "lindqvist", "lindqvist-1400"),
    ):
        page = Browser(j.stack.sandbox, entra_user=clinician).go(
            j.launch_url(vendor, endpoint, "provider", clinician=clinician, appointment=slot)
        )
        assert page.response.status_code == 200 and "/api/visit#" in page.url, page.url
        j.pages[vendor], j.visits[vendor] = page, visit_key_of(page)
        patient = Browser(j.stack.sandbox).go(
            j.launch_url(vendor, endpoint, "patient", appointment=slot)
        )
        assert "/graph/" in patient.url, patient.response.text[:300]
        wait_until(lambda v=vendor: j.status(v)["presence"]["patient"] != "not joined",
                   f"{vendor}: the patient's arrival")  # fmt: skip


def sms_setup(j: Journey) -> None:
    """Consent, the number linked, texts on with a reminder, the interface engine's certificate."""
    admin = j.session("admin")
    consent = admin.get(j.api("config/sms/consent"), timeout=30)
    etag = {"If-Match": consent.headers["ETag"]} if consent.headers.get("ETag") else {}
    body = {"sends_on_behalf_of_organization": True, "attendees_consented": True}
    assert admin.put(j.api("config/sms/consent"), json=body, headers=etag, timeout=30).ok
    linked = admin.put(
        j.api(f"config/sms/numbers/%2B{NUMBER[1:]}"), json={"endpoints": [EPIC]}, timeout=30
    )
    assert linked.status_code == 200, linked.text
    current = admin.get(j.api(f"config/sms/endpoints/{EPIC}"), timeout=30)
    on = admin.patch(
        j.api(f"config/sms/endpoints/{EPIC}"),
        headers={"If-Match": current.headers["ETag"]},
        json={"enabled": True, "organization_name": "Contoso Clinic",
              "reminder_offsets_minutes": [REMINDER_MINUTES],
              # off (start == end): the journey runs at any hour, the reminder must go
              "quiet_hours": {"start": "00:00", "end": "00:00"}},
        timeout=30,
    )  # fmt: skip
    assert on.status_code == 200, on.text
    _, certificate = engine.key_pair(j.engine_dir)
    url = j.api("config/sms/certificates/test")
    current = admin.get(url, timeout=30)
    etag = {"If-Match": current.headers["ETag"]} if current.status_code == 200 else {}
    put = admin.put(url, json={"certificate": certificate}, headers=etag, timeout=30)
    assert put.status_code == 200, put.text


def scheduling(j: Journey) -> None:
    """A signed SIU S12 for the launched appointment with the patient's phone, and a FHIR
    Appointment for another one with another patient's phone."""
    key, _ = engine.key_pair(j.engine_dir)
    # In 20 minutes: the reminder (15 before) is due soon, and the join link already opens.
    j.start = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)).replace(microsecond=0)
    messages = [
        (engine.siu("S12", j.slot_id("epic", "reyes-0900"), j.start, phone=RIVERA.phone),
         "application/hl7-v2"),
        (engine.fhir_appointment(j.slot_id("epic", "reyes-0930"), j.start, phone=WHITFIELD.phone),
         "application/fhir+json"),
    ]  # fmt: skip
    for body, ctype in messages:
        answer = j.session().post(
            j.api(f"scheduling/{EPIC}"),
            data=body,
            headers={"Content-Type": ctype, "X-EVC-Signature": engine.sign(body, key)},
            timeout=30,
        )
        assert answer.status_code in (200, 201), answer.text


def texts(j: Journey) -> None:
    """The timer's run now (the confirmations) and at the reminder's time (the reminder)."""
    from lib.sms.sending import Texting

    t = j.svc.texting
    texting = Texting(t._store, t._config, t._visits, t._sealed, t._sender, t._optouts, t._link,
                      now=j.clock)  # fmt: skip
    runs = [texting.run().outcomes]
    j.clock.now = j.start - dt.timedelta(minutes=REMINDER_MINUTES) + dt.timedelta(seconds=5)
    try:
        runs.append(texting.run().outcomes)
    finally:
        j.clock.now = None
    acs = j.stack.sandbox.acs
    wait_until(lambda: len(acs.sent_to(RIVERA.phone)) >= 2, f"confirmation and reminder {runs}")


def sms_join(j: Journey) -> None:
    """The patient taps the link in the reminder: the meeting's lobby."""
    text = j.stack.sandbox.acs.sent_to(RIVERA.phone)[-1].message
    link = re.search(r"https://\S+/api/j/\S+", text)
    assert link, text
    answer = j.session().get(link[0], allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text


def stop(j: Journey) -> None:
    """The patient replies STOP: the number is opted out."""
    j.stack.sandbox.acs.reply(RIVERA.phone, "STOP", to=NUMBER)
    wait_until(lambda: j.svc.texting._optouts.has(RIVERA.phone), "the opt-out")


def graph_events(j: Journey) -> None:
    """What Graph's notifications will say of the visit: both in, both out, the call ended.
    Through the queue, so every timeline listener (write-back, reports) runs on them."""
    key = j.visits["epic"]
    for kind, role in (("joined", "provider"), ("joined", "patient"), ("left", "patient"),
                       ("left", "provider"), ("ended", "visit")):  # fmt: skip
        j.svc.events.emit(key, kind, role, "graph")
        time.sleep(0.01)  # distinct occurred-at times: the fold orders by them


def reports(j: Journey) -> str | None:
    """Every report route the config API lists, as a reader asks for it."""
    paths = j.session().get(j.api("openapi.json"), timeout=30).json()["paths"]
    routes = [p for p, ops in paths.items() if "report" in p and "get" in ops and "{" not in p]
    if not routes:
        return "no report route in the OpenAPI document yet"
    reader = j.session("reader")
    for path in routes:
        answer = reader.get(f"{j.stack.url}/api{path}", timeout=60)  # servers: /api
        assert answer.status_code < 500, (path, answer.text)
    return None


def queues_drained(j: Journey) -> None:
    """Everything the journey enqueued is handled (write-back's queues too, once they exist)."""
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(j.stack.storage)

    def drained() -> bool:
        for queue in service.list_queues():
            if queue.name.endswith("-poison"):
                continue
            properties = service.get_queue_client(queue.name).get_queue_properties()
            if properties.approximate_message_count:
                return False
        return True

    wait_until(drained, "the queues drained", timeout=90)


@dataclass(frozen=True)
class Step:
    run: Callable[[Journey], str | None]  # a string: why it could not run (yet)
    needs: str | None = None  # a module that must exist for the step to run

    @property
    def name(self) -> str:
        return self.run.__name__


def writeback(j: Journey) -> None:
    """Write-back runs as a timeline listener on the events above; nothing more to do here
    than let its queues drain (queues_drained). A step of its own goes here when it needs one."""


STEPS = (
    Step(launches),
    Step(sms_setup),
    Step(scheduling),
    Step(texts),
    Step(sms_join),
    Step(stop),
    Step(graph_events),
    Step(writeback, needs="lib.writeback"),
    Step(reports, needs="lib.reports"),
    Step(queues_drained),
)


def run(j: Journey, watcher: QueueWatcher) -> None:
    with captured_logs(j.logs), watcher:
        for step in STEPS:
            if step.needs and importlib.util.find_spec(step.needs) is None:
                j.skipped[step.name] = f"{step.needs} is not on this branch yet"
                continue
            if why := step.run(j):
                j.skipped[step.name] = why
                continue
            j.done.append(step.name)
