"""`python -m bench reports`: the reports over 10,000 and 100,000 visits in Azurite, 90 days.

The projection table is seeded directly (batch transactions of 100, one partition each: what
the listener would have written, without replaying a million events). Each report then runs in a
fresh child process, so its memory is its own: the CSV (streamed: time to the first chunk, and
in total) and the summary (in total), with tracemalloc's peak during the report and the child's
peak resident size. The goal: memory flat in the number of visits (100k within 1.2x of 10k).
Organizer names are not resolved here (no Graph): that is one cached call per organizer.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

DAYS = 90
SIZES = (10_000, 100_000)  # each its own endpoint, in one table: the other's rows are there too
LAST = date(2026, 11, 30)


def _endpoint(count: int) -> str:
    return f"bench-{count}"


def _rows(count: int, seed: int = 7):
    from lib.reports.rows import Stream, VisitReport, partition, row_key

    rng = random.Random(seed)
    now, endpoint = datetime.now(UTC), _endpoint(count)
    for n in range(count):
        day = LAST - timedelta(days=n % DAYS)
        start = datetime(day.year, day.month, day.day, 14, tzinfo=UTC) + timedelta(
            seconds=n % 30000
        )
        key = f"vkbench{n:010d}"
        came = rng.random() > 0.1
        yield VisitReport(
            partition_key=partition(endpoint, day), row_key=row_key(start, key),
            endpoint_id=endpoint, visit_key=key, department=rng.choice(("Cardiology", "Family")),
            time_zone="UTC", scheduled_at=start, started_at=start if came else None,
            ended_at=start + timedelta(minutes=rng.randint(5, 40)) if came else None,
            organizer_oid="1c1a0001-0000-4000-8000-00000000d001", max_present=2,
            lobby_wait_seconds=rng.uniform(0, 900), patient_admitted=came, call_ended=True,
            texts_sent=rng.randint(0, 3), quality_measured=came,
            streams=[Stream(media="main-audio", direction=d, avg_loss=0.01, max_loss=0.05,
                            avg_jitter=rng.uniform(5, 45), max_jitter=60, avg_rtt=90, max_rtt=300)
                     for d in ("callerToCallee", "calleeToCaller")] if came else [],
            updated_at=now,
        )  # fmt: skip


def seed(connection: str, prefix: str, count: int) -> float:
    """Write `count` report rows in batches; returns seconds taken."""
    from azure.data.tables import TableServiceClient

    from lib.reports.rows import REPORTS, VisitReport
    from lib.storage import StorageUnavailable, TableStore

    table = TableStore(TableServiceClient.from_connection_string(connection), prefix).table(
        REPORTS, VisitReport
    )
    by_day: dict[str, list] = {}
    for row in _rows(count):
        by_day.setdefault(row.partition_key, []).append(row)

    def write(rows: list) -> None:
        for attempt in range(5):  # a loaded Azurite resets a connection now and then
            try:
                table.upsert_many(rows)
                return
            except StorageUnavailable:
                time.sleep(1 + attempt)
        table.upsert_many(rows)

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, by_day.values()))
    return time.perf_counter() - started


def child(connection: str, prefix: str, mode: str, count: str) -> dict:
    """One report in this process: its timings and memory."""
    import resource
    import tracemalloc

    from azure.data.tables import TableServiceClient

    from lib.reports.ranges import Range
    from lib.reports.service import ReportRows, Reports
    from lib.reports.verdicts import ThresholdFields
    from lib.storage import TableStore

    store = TableStore(TableServiceClient.from_connection_string(connection), prefix)
    endpoint = _endpoint(int(count))
    reports = Reports(ReportRows(store), ThresholdFields, None, lambda k: None)
    scope = Range(LAST - timedelta(days=DAYS - 1), LAST, endpoint)
    reports.summary(Range(LAST, LAST, endpoint))  # warm: imports and the table client
    tracemalloc.start()
    started = time.perf_counter()
    first, size = None, 0
    if mode == "csv":
        for chunk in reports.csv(scope, admin=False):
            first = first or time.perf_counter() - started
            size += len(chunk)
    else:
        size = reports.summary(scope)["total"]["visits"]
        first = time.perf_counter() - started
    total = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    return {"first": first, "total": total, "size": size, "peak_mib": peak / 2**20, "rss_mib": rss}


def _in_child(connection: str, prefix: str, mode: str, count: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.reports", connection, prefix, mode, str(count)],
        capture_output=True, text=True, check=True, timeout=3600,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> list[tuple[str, str, str]]:
    from dev.azurite import start_azurite

    azurite = start_azurite()
    rows: list[tuple[str, str, str]] = []

    def say(*row: str) -> None:
        rows.append(row)
        print("  ".join(row), file=sys.stderr, flush=True)  # progress: a run takes minutes

    try:
        conn, prefix = azurite.connection_string, "benchreports"
        for count in SIZES:
            say(f"reports: seed {count:,} rows", f"{seed(conn, prefix, count):.1f} s", "batches")
        found: dict[tuple[int, str], dict] = {}
        for count in SIZES:
            for mode in ("csv", "summary"):
                found[count, mode] = got = _in_child(conn, prefix, mode, count)
                say(
                    f"reports: {mode} {count:,} first byte",
                    f"{got['first'] * 1000:.0f} ms",
                    "90 days, one endpoint",
                )
                say(
                    f"reports: {mode} {count:,} total",
                    f"{got['total']:.1f} s",
                    f"{count / got['total']:,.0f} visits/s",
                )
                say(
                    f"reports: {mode} {count:,} peak traced",
                    f"{got['peak_mib']:.1f} MiB",
                    f"rss {got['rss_mib']:.0f} MiB",
                )
        for mode in ("csv", "summary"):
            small, big = found[SIZES[0], mode], found[SIZES[1], mode]
            say(
                f"reports: {mode} memory 100k / 10k",
                f"{big['peak_mib'] / small['peak_mib']:.2f}x",
                "goal: within 1.2x (flat in the number of visits)",
            )
            say(
                f"reports: {mode} time 100k / 10k",
                f"{big['total'] / small['total']:.1f}x",
                "linear would be 10x",
            )
    finally:
        azurite.stop()
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5:
        print(json.dumps(child(*sys.argv[1:])))
    else:
        for line in run():
            print(*line, sep="  ")
