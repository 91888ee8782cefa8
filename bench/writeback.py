"""EHR write-back: throughput through Azurite, and a fault run that must lose and repeat nothing.

The real pipeline on the local host (dev/host, host.json's queue settings): visit events on
`visit-events`, the fold and its write-back planner, jobs on `ehr-writeback`, the worker, the
sandbox EHR over HTTPS with SMART Backend Services tokens. Each visit gets its own appointment
at the stand-in, and its events go in three rounds (patient arrived, joined, left), each
round's events all at once; a round ends when every visit's EHR status shows it.

- **throughput**: the Epic-like telehealth status (one call per write), every EHR answer 20 ms
  late. Events per second end to end (the event queued -> the EHR shows it), against the ideal
  of the host's queue concurrency (batchSize 16 + newBatchThreshold 8 = 24) over that latency.
- **faults**: the Oracle Health-like Appointment PATCH (a read and a PATCH per write), 10,000
  events (`python -m bench writeback faults 900` for a quick one), the EHR failing 30% of calls:
  429 and 503 with Retry-After, hangs past the call timeout, 409 version conflicts; the worker
  killed (SIGKILL) and restarted twice. Checked at the end: every visit's EHR history is exactly
  arrived, checked-in, fulfilled (each effect once, in order), every visit folded exactly its
  three events, and the dead-letter table is empty or each entry explained (then replayed).

Everything runs on free loopback ports and stops at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dev.procs import ROOT
from dev.stack import RunningHost, app_certificate, app_env, launch_host, point_sandbox_at

THROUGHPUT_VISITS = 300  # x 3 events
FAULT_EVENTS = 10_000
LATENCY = 0.020
CONCURRENCY = 24  # host.json: batchSize 16 + newBatchThreshold 8
ROUNDS = (("arrived", "arrived", "Connected"), ("joined", "checked-in", "InVisit"),
          ("left", "fulfilled", "Disconnected"))  # fmt: skip
ROUND_TIMEOUT = 900.0  # at least; a round of many visits gets half a second each
# The host settings of a run that kills workers: a killed host's messages come back after 20 s
# (not the real host's 10 minutes), a held visit lease runs out after budget + 10 s.
HOST_ENV = {
    "CONNECTOR_BACKGROUND_BUDGET_SECONDS": "20",
    "CONNECTOR_WRITEBACK_TIMEOUT_SECONDS": "1",
    "DEV_HOST_PROCESSING_VISIBILITY_SECONDS": "20",
    "CONNECTOR_LOG_LEVEL": "WARNING",
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc: what it cost,
    however busy the machine was (the wall clock there is other people's too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Rig:
    sandbox: Any
    env: dict[str, str]
    folder: Path
    tls: tuple[Path, Path]
    host: RunningHost
    svc: Any = None
    restarts: int = 0
    azurite_pid: int = 0

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the app's host and of Azurite."""
        return cpu_seconds(self.host.proc.pid), cpu_seconds(self.azurite_pid)

    def start_host(self, port: int | None = None) -> None:
        settings = self.folder / "local.settings.json"
        self.host = launch_host(
            ROOT, self.folder / f"host-{self.restarts}.log", env=self.env, settings=settings,
            port=port, tls=self.tls, timeout=60,
        )  # fmt: skip

    def kill_host(self) -> None:
        """SIGKILL: no clean shutdown, messages and visit leases left as they are."""
        os.killpg(self.host.proc.pid, signal.SIGKILL)
        self.host.proc.wait(timeout=30)
        self.restarts += 1
        self.start_host(self.host.port)  # same port: the EHR fetches our JWKS from it


@contextlib.contextmanager
def rig(prefix: str) -> Iterator[Rig]:
    from dev.azurite import start_azurite
    from dev.sandbox import start_sandbox
    from lib.bootstrap import background_storage_options, build
    from lib.settings import load_settings
    from lib.storage import TableStore
    from lib.storage.account import table_service

    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp, contextlib.ExitStack() as on:
        folder = Path(tmp)
        azurite = start_azurite()
        on.callback(azurite.stop)
        sandbox = start_sandbox(port=0, state_dir=folder / "sandbox")
        on.callback(sandbox.stop)
        from dev.stack import APP_ADDRESS, free_port

        port = free_port()
        url = f"https://{APP_ADDRESS}:{port}"
        env = {**app_env(azurite.connection_string, sandbox, url, prefix), **HOST_ENV}
        (folder / "local.settings.json").write_text('{"Values": {}}')
        point_sandbox_at(sandbox, url)
        tls = app_certificate(sandbox.ca_file, folder / "tls")
        the = Rig(sandbox, env, folder, tls, host=None, azurite_pid=azurite.proc.pid)  # type: ignore[arg-type]
        the.start_host(port)
        on.callback(lambda: the.host.stop())
        os.environ["REQUESTS_CA_BUNDLE"] = str(sandbox.ca_file)  # our in-process services
        settings = load_settings(env)
        # The bench's own reads wait as long as a queue worker's would (Azurite is busy).
        tables = table_service(settings, **background_storage_options(settings))
        the.svc = build(settings, TableStore(tables, settings.table_prefix))
        yield the


def create_endpoint(the: Rig, vendor: str) -> str:
    import requests

    token = the.sandbox.entra.mint(roles=["Connector.Admin"], user="admin")
    body = {
        "id": f"bench-{vendor}",
        "fhir_base_url": the.sandbox.ehr_base(vendor),
        "vendor": vendor,
        "environment": "test",
        "organization": "Bench Health",
        "client_id": f"evc-{vendor}-jwt",
        "client_auth": {"method": "private_key_jwt", "alg": "RS384"},
        "writeback": {
            "enabled": True,
            "auth": {"method": "backend_services", "client_id": f"evc-{vendor}-jwt"},
        },
    }
    if vendor == "epic":
        body["approver"] = {"oid": "1c1a00a9-0000-4000-8000-00000000a901", "display_name": "A"}
    answer = requests.post(
        f"{the.host.url}/api/config/endpoints", json=body, timeout=60,
        headers={"Authorization": f"Bearer {token}"}, verify=str(the.sandbox.ca_file),
    )  # fmt: skip
    if answer.status_code != 201 or not answer.json()["validation"]["ok"]:
        log = the.host.log()[-3000:]
        raise RuntimeError(f"endpoint not created: {answer.status_code} {answer.text[:300]}\n{log}")
    return body["id"]


@dataclass
class Visits:
    endpoint: str
    ehr: Any
    items: list[tuple[str, str]] = field(default_factory=list)  # (visit key, appointment id)


def make_visits(the: Rig, endpoint: str, vendor: str, count: int, tag: str) -> Visits:
    from lib.visits.sealed import APPOINTMENT_ID
    from lib.visits.store import Visit

    ehr = the.sandbox.stand_ins[vendor]
    found = Visits(endpoint, ehr, [(f"vk{tag}{i:08d}bench", f"{tag}{i:07d}") for i in range(count)])
    ehr.add_appointments([a for _, a in found.items])
    now, purge = datetime.now(UTC), datetime.now(UTC) + timedelta(hours=2)

    def one(item: tuple[str, str]) -> None:
        key, appt = item
        the.svc.visits.claim(
            Visit(partition_key=key, row_key="visit", endpoint_id=endpoint,
                  organizer_oid="00000000-0000-4000-8000-000000000001", created_at=now,
                  created_by_role="provider")
        )  # fmt: skip
        the.svc.sealed.put(key, APPOINTMENT_ID, f"Appointment/{appt}", purge)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, found.items))
    return found


def shown(visits: Visits, appt: str, vendor: str) -> str | None:
    written = visits.ehr.writes.get(appt)
    return written.connection if vendor == "epic" else written.status


def send_round(the: Rig, visits: Visits, kind: str, at: datetime) -> None:
    from lib.visits.events import VisitEventMessage

    def one(item: tuple[str, str]) -> None:
        event = VisitEventMessage.new(item[0], kind, "patient", "graph")  # type: ignore[arg-type]
        the.svc.events.publish(event.model_copy(update={"at": at}))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, visits.items))


def dead_letters(the: Rig, visits: Visits, last: int = 0) -> int:
    """How many failures the endpoint has (the last count when storage is too busy to say)."""
    from lib.storage import StorageUnavailable

    try:
        return len(the.svc.writeback_failures.list(endpoint_id=visits.endpoint, size=100).items)
    except StorageUnavailable:
        return last


def wait_round(
    the: Rig, visits: Visits, vendor: str, want: str, kill_at: float | None = None
) -> tuple[float, int]:
    """Seconds until every visit shows `want` (or its write is dead-lettered); how many were.
    `kill_at`: kill and restart the worker when that share of the round is done."""
    started, total = time.monotonic(), len(visits.items)
    limit = max(ROUND_TIMEOUT, 0.5 * total)
    killed, before, dead = kill_at is None, dead_letters(the, visits), 0
    while True:
        done = sum(1 for _, appt in visits.items if shown(visits, appt, vendor) == want)
        dead = dead_letters(the, visits, before + dead) - before
        if not killed and done >= total * kill_at:
            the.kill_host()
            killed = True
        if done + dead >= total:
            return time.monotonic() - started, dead
        if time.monotonic() - started > limit:
            raise TimeoutError(f"round {want}: {done}/{total} after {limit:.0f} s")
        time.sleep(0.25)


def throughput() -> list[tuple[str, str, str]]:
    with rig("wbthroughput") as the:
        endpoint = create_endpoint(the, "epic")
        visits = make_visits(the, endpoint, "epic", THROUGHPUT_VISITS, "t")
        the.sandbox.set_latency(0.0, {"epic": LATENCY})
        took, t0, cpu0 = [], datetime.now(UTC), the.cpu()
        for n, (kind, _, code) in enumerate(ROUNDS):
            send_round(the, visits, kind, t0 + timedelta(seconds=n))
            took.append(wait_round(the, visits, "epic", code)[0])
        host_cpu, azurite_cpu = (b - a for a, b in zip(cpu0, the.cpu(), strict=True))
    events = len(visits.items) * len(ROUNDS)
    rate = events / sum(took)
    ideal = CONCURRENCY / LATENCY
    return [
        ("writeback CPU ms an event: host", f"{host_cpu * 1000 / events:.1f}",
         "the app's host process, all its threads (queue functions, polling, the EHR calls)"),
        ("writeback CPU ms an event: Azurite", f"{azurite_cpu * 1000 / events:.1f}",
         "the storage emulator's process: what the event's round trips cost it"),
        ("writeback events/s end to end", f"{rate:.1f}",
         f"{events} events, EHR +{LATENCY * 1000:.0f} ms per call, rounds {took[0]:.1f} / "
         f"{took[1]:.1f} / {took[2]:.1f} s"),
        ("writeback vs ideal (24 / 20 ms)", f"{rate / ideal:.3f}",
         f"ideal {ideal:.0f}/s: the host's queue concurrency over the EHR's latency alone"),
    ]  # fmt: skip


FAULTS = (  # in order; each takes its share of what the ones before let through (~7.5% each)
    {"status": 429, "retry_after": 1, "rate": 0.075},
    {"status": 503, "retry_after": 1, "rate": 0.081},
    {"kind": "hang", "seconds": 1.5, "rate": 0.088},  # past CONNECTOR_WRITEBACK_TIMEOUT 1 s
    {"status": 409, "method": "PATCH", "rate": 0.19},  # PATCHes are half the calls
)


def fault_run(events: int) -> list[tuple[str, str, str]]:
    with rig("wbfaults") as the:
        endpoint = create_endpoint(the, "cerner")
        visits = make_visits(the, endpoint, "cerner", max(1, events // len(ROUNDS)), "f")
        for fault in FAULTS:
            the.sandbox.inject(family="ehr-writeback", count=None, **fault)
        started, t0, took, dead = time.monotonic(), datetime.now(UTC), [], []
        for n, (kind, status, _) in enumerate(ROUNDS):
            send_round(the, visits, kind, t0 + timedelta(seconds=n))
            kill = 0.4 if n in (1, 2) else None  # two kills: mid second and third round
            seconds, count = wait_round(the, visits, "cerner", status, kill)
            took.append(seconds)
            dead.append(count)
        elapsed = time.monotonic() - started
        answers = Counter(
            e.status
            for e in the.sandbox.journal.entries(stand_in="cerner")
            if "/Appointment/" in e.path
        )
        the.sandbox.faults.reset()
        failures = the.svc.writeback_failures.list(endpoint_id=endpoint, size=100).items
        codes = Counter(f"{f.code} ({f.detail})" for f in failures)
        for failure in failures:  # explained above; the EHR is well again: replay them
            the.svc.writeback_failures.replay(failure.id, _bench_admin(), the.svc.writeback_queue())
        if failures:
            time.sleep(5)
        check = verify(the, visits)
    sent = len(visits.items) * len(ROUNDS)
    calls = sum(answers.values())
    failed = calls - answers.get(200, 0)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
    rows = [
        ("writeback fault run events", str(sent),
         f"{len(visits.items)} visits x 3, {elapsed:.0f} s, worker killed {the.restarts}x"),
        ("writeback EHR calls failed", f"{failed / calls:.2f}",
         f"of the last {calls} Appointment calls (the journal keeps 20,000): {statuses}"),
        ("writeback visits exactly right", f"{check['right']}/{len(visits.items)}",
         f"history arrived, checked-in, fulfilled; wrong {check['wrong']}; "
         f"duplicate effects {check['duplicates']}"),
        ("writeback events folded once", f"{check['folded']}/{len(visits.items)}",
         "each visit's state made of exactly its 3 events"),
        ("writeback dead-lettered", str(sum(dead)),
         "; ".join(f"{k} x{v}" for k, v in codes.items()) or "none"),
    ]  # fmt: skip
    return rows


def _bench_admin() -> Any:
    from lib.endpoints.actor import Actor

    return Actor(oid="00000000-0000-4000-8000-00000000be7c", name="bench")


def verify(the: Rig, visits: Visits) -> dict[str, int]:
    expected = [status for _, status, _ in ROUNDS]
    right = wrong = duplicates = folded = 0
    for _key, appt in visits.items:
        history = [h["value"] for h in visits.ehr.writes.get(appt).history]
        if history == expected:
            right += 1
        else:
            wrong += 1
        duplicates += len(history) - len(set(history))

    def events_of(key: str) -> int:
        row = the.svc.visits.state(key)
        return row.events if row else 0

    with ThreadPoolExecutor(16) as pool:
        folded = sum(1 for n in pool.map(events_of, [k for k, _ in visits.items]) if n == 3)
    return {"right": right, "wrong": wrong, "duplicates": duplicates, "folded": folded}


def run(args: list[str] | None = None) -> list[tuple[str, str, str]]:
    """`writeback [throughput|faults] [events]`: both parts by default, 10,000 fault events."""
    words = list(args or [])
    only = words.pop(0) if words and words[0] in ("throughput", "faults") else None
    events = int(words[0]) if words else FAULT_EVENTS
    rows = throughput() if only in (None, "throughput") else []
    return rows + (fault_run(events) if only in (None, "faults") else [])


if __name__ == "__main__":
    for row in run(sys.argv[1:]):
        print(*row, sep="  ")
