"""SMS: what a reminders timer run costs as texts pile up, and exactly once under faults and kills.

- Scan cost: the same 1,000 due reminders, once beside 1,000 stored future ones and once beside
  100,000 (seeded with batch transactions). Goal <= 1.3x: a run reads the minutes that are due
  (lib/sms/ledger.py), not what is stored. Measured two ways: the storage requests a timer run
  makes, by kind, counted at the SDK (what Table Storage bills and indexes: a partition query
  costs by its partition), and the run's time on Azurite, which is the emulator's, not ours:
  Azurite answers every query by scanning the whole table in JavaScript
  (node_modules/azurite/dist/src/table/persistence/LokiTableMetadataStore.js,
  `queryTableEntities`: `.chain().where(...)` over the collection), so its time grows with
  what is stored whatever the query. `python -m bench sms scan 100000` runs only this part.
- Exactly once: 5,000 due reminders; the Communication Services stand-in fails 20% of sends
  (429, 503, and accepted-then-too-late timeouts); the timer runs in its own process, killed
  (SIGKILL) at random points and started again until nothing is left to send. Then the texts the
  stand-in received are counted per ledger row (visit, kind): each `sent` row exactly 1, and the
  `unknown` rows (the guarantee's one gap: maybe sent, never resent) counted and listed.

Both on Azurite and the in-process sandbox, with the app's own classes (lib/sms/sending.py); the
timer's clock runs SPEED times faster than the wall's so that Retry-After, backoff and the
2-minute lease pass in seconds. `python -m bench sms` runs these and bench/sms_intake.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dev.procs import ROOT

HASH_KEY = "bench-sms-hash-key-0123456789abcdef0123456789"
NUMBERS = 5  # one toll-free number sends 200 a minute: five take a 1,000-text run in one go
SPEED = 10.0  # timer-clock seconds per wall second (exactly-once run)
THREADS = 6  # Azurite is one Node process: more only makes it drop connections


@dataclass
class World:
    """One app instance's SMS services over a table prefix (any process can build it)."""

    storage: str
    prefix: str
    acs: str
    epoch: float  # the timer clock: epoch + (wall - t0) * speed
    t0: float
    speed: float = 1.0

    def now(self) -> dt.datetime:
        at = self.epoch + (time.time() - self.t0) * self.speed
        return dt.datetime.fromtimestamp(at, dt.UTC)

    def services(self, read_timeout: float = 15, hook: object = None) -> tuple:
        """``hook``: the SDK's raw request hook (called with each table request)."""
        from azure.data.tables import TableServiceClient

        from dev.stack import SEALING_KEY
        from lib.endpoints.models import Validation
        from lib.endpoints.service import EndpointService
        from lib.privacy import PrivacyKeys
        from lib.sealing import Sealer
        from lib.sms.config import SmsConfig
        from lib.sms.numbers import PhoneNumbers
        from lib.sms.sender import SmsSender
        from lib.sms.sending import OptOuts, Texting
        from lib.storage import TableStore
        from lib.visits.sealed import SealedValues
        from lib.visits.store import VisitStore

        hooked = {"raw_request_hook": hook} if hook is not None else {}
        service = TableServiceClient.from_connection_string(self.storage, **hooked)
        store = TableStore(service, self.prefix)
        valid = lambda e, a: Validation(checked_at=dt.datetime.now(dt.UTC), ok=True)  # noqa: E731
        endpoints = EndpointService(store, valid)
        config = SmsConfig(store, endpoints, PhoneNumbers(self.acs))
        privacy = PrivacyKeys(HASH_KEY)
        sealed = SealedValues(store, Sealer.from_setting(SEALING_KEY, hash_key=HASH_KEY))
        visits = VisitStore(store)
        texting = Texting(
            store,
            config,
            visits,
            sealed,
            SmsSender(self.acs, read_timeout=read_timeout),
            OptOuts(store, privacy),
            lambda key, v: f"https://evc.example.org/api/j/{key[:8]}v{v}",
            now=self.now,
        )
        return store, endpoints, config, visits, sealed, texting

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


# --- setting up ---------------------------------------------------------------------------------
@contextlib.contextmanager
def parts() -> Iterator[tuple[str, object]]:
    """Azurite and the sandbox on free ports; the sandbox's CA trusted by this process."""
    from dev.azurite import start_azurite
    from dev.sandbox import start_sandbox

    with tempfile.TemporaryDirectory(prefix="bench-sms-") as tmp, contextlib.ExitStack() as on:
        azurite = start_azurite()
        on.callback(azurite.stop)
        sandbox = start_sandbox(port=0, state_dir=Path(tmp) / "sandbox")
        on.callback(sandbox.stop)
        os.environ["REQUESTS_CA_BUNDLE"] = str(sandbox.ca_file)
        sandbox.acs.numbers.seconds = 0.2
        yield azurite.connection_string, sandbox


def clinics(world: World) -> list[str]:
    """NUMBERS endpoints, each with a number of its own (ordered as an admin does), texts on,
    reminders at any hour. Returns the endpoint ids."""
    from lib.endpoints.actor import Actor
    from lib.endpoints.models import EndpointCreate
    from lib.sms.models import ConsentGrant, NumberLinks, NumberOrderCreate, SmsSettingsUpdate

    admin = Actor(oid="00000000-0000-4000-8000-0000000000a1", name="Bench Admin")
    _, endpoints, config, *_ = world.services()
    config.grant(ConsentGrant(sends_on_behalf_of_organization=True, attendees_consented=True),
                 None, admin)  # fmt: skip
    ids = []
    for i in range(NUMBERS):
        body = {"id": f"clinic-{i}", "fhir_base_url": f"https://clinic-{i}.example.org/r4",
                "vendor": "cerner", "environment": "test", "organization": "Bench",
                "client_id": "c",
                "client_auth": {"method": "private_key_jwt", "alg": "RS384"}}  # fmt: skip
        eid = endpoints.create(EndpointCreate.model_validate(body), admin).id
        order = config.order(NumberOrderCreate(), admin)
        while order.state not in ("succeeded", "failed"):
            time.sleep(0.2)
            order = config.poll(order.id)
        config.link(order.number, NumberLinks(endpoints=[eid]), None, admin)
        update = SmsSettingsUpdate.model_validate(
            {"enabled": True, "organization_name": "Bench Clinic",
             "quiet_hours": {"start": "00:00", "end": "00:00"}}
        )  # fmt: skip
        config.update_settings(eid, update, config.settings(eid).etag, admin)
        ids.append(eid)
    return ids


def seed_due(world: World, endpoints: list[str], count: int, due: dt.datetime) -> None:
    """``count`` visits, each with its phone sealed and one reminder due at ``due``."""
    from lib.sms.ledger import LedgerRow
    from lib.visits.store import Visit

    _, _, _, visits, sealed, texting = world.services()
    start = due + dt.timedelta(days=2)  # far enough that a fast timer clock never reaches it

    def one(i: int) -> None:
        key = f"{i:08d}" + os.urandom(12).hex()
        visits.claim(
            Visit(partition_key=key, row_key="visit", endpoint_id=endpoints[i % len(endpoints)],
                  organizer_oid="", start=start, end=start + dt.timedelta(minutes=30),
                  created_at=due, created_by_role="schedule", schedule_version=1)
        )  # fmt: skip
        sealed.put(key, "phone", f"+1555{5000000 + i:07d}", start + dt.timedelta(days=1),
                   now=world.now())  # fmt: skip
        texting.ledger.plan(
            LedgerRow(partition_key=key, row_key="reminder-15-v1", kind="reminder", version=1,
                      endpoint_id=endpoints[i % len(endpoints)], due_at=due, updated_at=due)
        )  # fmt: skip

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: _again(lambda: one(i)), range(count)))


def _again(step):
    """``step`` (idempotent: creates if absent, upserts) again if Azurite dropped a connection."""
    from lib.storage import StorageUnavailable

    for attempt in range(5):
        try:
            return step()
        except StorageUnavailable:
            time.sleep(0.5 * 2**attempt)
    return step()


def seed_future(world: World, endpoint: str, count: int, after: dt.datetime) -> None:
    """``count`` stored future reminders (4 a visit, a pointer each), by batch transactions:
    rows in other partitions than the due minutes', as a clinic's next weeks are."""
    from lib.sms.ledger import DUE, LEDGER, DuePointer, LedgerRow, bucket

    store, *_ = world.services()
    offsets = (1440, 60, 30, 15)
    visits = count // len(offsets)
    minutes = 30 * 24 * 60  # spread over the 30 days after tomorrow: none due yet

    def visit(i: int) -> list[tuple[str, LedgerRow]]:
        start = after + dt.timedelta(days=2, minutes=(i * 7919) % minutes)
        key = f"f{i:07d}" + os.urandom(12).hex()
        return [("create", LedgerRow(partition_key=key, row_key=f"reminder-{m}-v1",
                                     kind="reminder", version=1, endpoint_id=endpoint,
                                     due_at=start - dt.timedelta(minutes=m), updated_at=after))
                for m in offsets]  # fmt: skip

    rows = [r for ops in map(visit, range(visits)) for r in ops]
    pointers: dict[str, list[tuple[str, DuePointer]]] = {}
    for _, row in rows:
        pointer = DuePointer(partition_key=bucket(row.due_at), row_key=row.tag, due_at=row.due_at)
        pointers.setdefault(pointer.partition_key, []).append(("create", pointer))
    batches = [(LEDGER, [r for r in rows[i : i + 4]]) for i in range(0, len(rows), 4)]
    for ops in pointers.values():
        batches += [(DUE, ops[i : i + 100]) for i in range(0, len(ops), 100)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda b: _transact(store, *b), batches))


def _transact(store: object, table: str, ops: list) -> None:
    """One batch, again if Azurite dropped the connection (a batch is all or nothing: one that
    went through before the drop is then "already there")."""
    from lib.storage import KeyExists, StorageUnavailable

    for attempt in range(6):
        try:
            store.transact(table, ops)
            return
        except KeyExists:
            return
        except StorageUnavailable:
            time.sleep(0.5 * 2**attempt)
    store.transact(table, ops)


# --- scan cost ----------------------------------------------------------------------------------
class Requests:
    """Table requests by kind (the SDK's raw request hook): partition queries, point reads,
    writes. Not a Counter itself: the SDK skips a hook that is falsy, as an empty Counter is."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, request: object) -> None:
        r = request.http_request
        last = r.url.split("?")[0].rsplit("/", 1)[-1]
        kind = "write" if r.method != "GET" else "query" if last.endswith("()") else "read"
        self.seen[kind] += 1


def scan_run(storage: str, acs: str, stored: int) -> tuple[float, object, Counter[str]]:
    """One timer run over the 1,000 due reminders, beside ``stored`` future ones: its seconds,
    its report and its table requests."""
    epoch = time.time()
    world = World(storage, "b" + os.urandom(5).hex(), acs, epoch, time.time())
    ids = clinics(world)
    due = world.now() - dt.timedelta(minutes=1)
    seed_due(world, ids, 1000, due)
    seed_future(world, ids[0], stored, world.now())
    counted = Requests()
    texting = world.services(hook=counted)[-1]
    started = time.perf_counter()
    report = texting.run()
    took = time.perf_counter() - started
    print(f"scan run beside {stored:,} stored: {took:.1f} s, {dict(counted.seen)}, sent "
          f"{report.sent}", file=sys.stderr, flush=True)  # fmt: skip
    return took, report, counted.seen


def scan_rows(storage: str, sandbox: object, big_size: int = 100_000) -> list[tuple[str, str, str]]:
    acs = sandbox.acs.connection_string
    scan_run(storage, acs, 1000)  # warm: Azurite, the SDK's connections, the sandbox
    # Small, big, small: the machine's load drifts; the ratio is to the two smalls' mean.
    first, report_small, asked_small = scan_run(storage, acs, 1000)
    big, report_big, asked_big = scan_run(storage, acs, big_size)
    second, _, _ = scan_run(storage, acs, 1000)
    small = (first + second) / 2
    said = lambda c: ", ".join(f"{c[k]} {k}" for k in ("query", "read", "write"))  # noqa: E731
    return [
        ("sms scan: 1,000 due beside 1,000 stored", f"{sum(asked_small.values())} req",
         f"{said(asked_small)}; sent {report_small.sent}, seen {report_small.seen}; "
         f"{first:.1f} / {second:.1f} s on Azurite"),
        (f"sms scan: 1,000 due beside {big_size:,} stored", f"{sum(asked_big.values())} req",
         f"{said(asked_big)}; sent {report_big.sent}, seen {report_big.seen}; "
         f"{big:.1f} s on Azurite"),
        ("sms scan: requests ratio (goal <= 1.3x)",
         f"{sum(asked_big.values()) / sum(asked_small.values()):.2f}x",
         "table requests of the two timer runs: what Table Storage indexes and bills"),
        ("sms scan: Azurite time ratio", f"{big / small:.2f}x",
         "the emulator scans the whole table for every query (see the module's docstring)"),
    ]  # fmt: skip


# --- exactly once under faults and kills -------------------------------------------------------
def worker(config: str) -> None:
    """The timer's process: one run after another, until killed."""
    world = World(**json.loads(config))
    texting = world.services(read_timeout=1)[-1]
    while True:
        texting.run()
        time.sleep(0.05)


def drained(texting: object) -> bool:
    from lib.sms.ledger import TERMINAL

    return all(r.state in TERMINAL for r in texting.ledger.rows.query("PartitionKey ne ''"))


def exactly_once_rows(storage: str, sandbox: object, texts: int = 5000) -> list[tuple]:
    acs = sandbox.acs
    epoch = time.time()
    world = World(storage, "x" + os.urandom(5).hex(), acs.connection_string, epoch, time.time(),
                  SPEED)  # fmt: skip
    ids = clinics(world)
    due = world.now() - dt.timedelta(minutes=1)
    seed_due(world, ids, texts, due)
    before = {t.id for t in acs.texts.snapshot()}
    acs.set_chaos(0.2, seed=7, timeout_s=1.5)  # 429, 503, accepted-then-too-late
    rng, kills, started = random.Random(3), 0, time.monotonic()
    texting = world.services()[-1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        while not drained(texting):
            proc = subprocess.Popen([sys.executable, "-m", "bench.sms", "worker", world.to_json()],
                                    cwd=ROOT, env=env)  # fmt: skip
            time.sleep(rng.uniform(2.0, 10.0))  # a run or two, killed anywhere in them
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
            if time.monotonic() - started > 2400:
                raise RuntimeError("the backlog did not drain in 40 minutes")
    finally:
        acs.set_chaos(None)
    took = time.monotonic() - started
    return count_texts(texting, acs, before, kills, took)


def count_texts(texting, acs, before: set, kills: int, took: float) -> list[tuple]:
    received = Counter(t.tag for t in acs.texts.snapshot() if t.id not in before)
    rows = list(texting.ledger.rows.query("PartitionKey ne ''"))
    states = Counter(r.state for r in rows)
    wrong = [r.tag for r in rows if r.state in ("sent", "delivered") and received[r.tag] != 1]
    unknown = [r for r in rows if r.state == "unknown"]
    arrived = sum(1 for r in unknown if received[r.tag] == 1)
    twice = [tag for tag, n in received.items() if n > 1]
    failed = [r for r in rows if r.state == "failed"]
    listed = ", ".join(f"{r.tag[:8]}…({received[r.tag]})" for r in unknown[:6])
    every = ROOT / "test-artifacts" / "sms-unknown.csv"  # the full list: tag, texts received
    every.parent.mkdir(exist_ok=True)
    every.write_text("tag,received,reason\n" + "".join(
        f"{r.tag},{received[r.tag]},{r.reason or ''}\n" for r in unknown))  # fmt: skip
    return [
        ("sms exactly once: texts / timer kills", f"{len(rows)} / {kills}",
         f"{took:.0f} s to drain; states {dict(states)}"),
        ("sms exactly once: sent rows not received once", str(len(wrong)), "goal 0"),
        ("sms exactly once: any row received twice", str(len(twice)), "goal 0"),
        ("sms exactly once: unknown (arrived / not)", f"{arrived} / {len(unknown) - arrived}",
         f"maybe sent, never resent: {listed}{' …' if len(unknown) > 6 else ''} "
         f"(all in {every.relative_to(ROOT)})"),
        ("sms exactly once: failed (gave up)", str(len(failed)),
         ", ".join(f"{r.tag[:8]}…: {r.reason}" for r in failed[:3]) or "-"),
    ]  # fmt: skip


def run(args: list[str] | None = None) -> list[tuple[str, str, str]]:
    """All three parts; `scan [stored]` or `once [texts]` runs only that one, at that size."""
    from bench import sms_intake

    words = list(args or [])
    rows: list[tuple[str, str, str]] = []
    with parts() as (storage, sandbox):
        if not words or words[0] == "scan":
            rows += _said(scan_rows(storage, sandbox, *map(int, words[1:2])))
        if not words or words[0] == "once":
            rows += _said(exactly_once_rows(storage, sandbox, *map(int, words[1:2])))
    return rows if words else rows + _said(sms_intake.run())


def _said(rows: list) -> list:
    """Each phase's rows as soon as it ends (on stderr): the whole takes long on a busy machine."""
    for row in rows:
        print(*row, sep="  |  ", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        worker(sys.argv[2])
    else:
        for row in run(sys.argv[1:]):
            print(*row, sep="  |  ")
