"""Scheduling intake: signed SIU S12 messages per second into one app instance, L = 0.

The app on the local Functions host (dev/stack.py `running`, Azurite, the sandbox at no added
latency), texts on as `make run` leaves them (dev/seed.py `seed_sms`); CLIENTS interface engines
each post MESSAGES / CLIENTS new appointments one after another, each a fresh SIU signed as
docs/sms.md says (detached JWS, ES256). Reported: messages per second over the whole run, and
p50 / p99 of the 2xx answers' latency (each one durable before its 2xx: the visit, the sealed
phone and Appointment id, the ledger's texts). The host's reminders timer runs meanwhile (once a
minute), as it would in production.
"""

from __future__ import annotations

import datetime as dt
import statistics
import threading
import time
import uuid

import requests

MESSAGES = 400
CLIENTS = 4
ENDPOINT = "cerner-sandbox-test"  # dev/seed.py's Cerner endpoint


def post_all(url: str, ca_file: str, key: object, count: int, out: list, errors: list) -> None:
    from dev.sandbox.ehr.scheduling import sign, siu

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_file
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    for _ in range(count):
        body = siu("S12", f"BENCH-{uuid.uuid4().hex[:12]}", start, phone="+15555550101")
        headers = {"Content-Type": "application/hl7-v2", "X-EVC-Signature": sign(body, key)}
        began = time.perf_counter()
        answer = session.post(url, data=body, headers=headers, timeout=60)
        took = time.perf_counter() - began
        (out if 200 <= answer.status_code < 300 else errors).append((took, answer.status_code))


def run() -> list[tuple[str, str, str]]:
    from dev.sandbox.directory import ROLE_VALUES
    from dev.sandbox.ehr.scheduling import key_pair
    from dev.stack import running

    with running("benchintake") as stack:
        sandbox = stack.sandbox

        def token(role: str) -> str:
            return sandbox.entra.mint(roles=[ROLE_VALUES[role]], user=role)

        lines = stack.seed_sms(token)
        if any(not line.endswith(("linked", "on", "uploaded")) for line in lines):
            raise RuntimeError(f"SMS setup failed: {lines}")
        key, _ = key_pair(sandbox.state.state_dir)
        url = f"{stack.url}/api/scheduling/{ENDPOINT}"
        warm: list = []
        post_all(url, str(sandbox.ca_file), key, 20, warm, [])  # connections, caches, JIT
        ok: list = []
        errors: list = []
        threads = [
            threading.Thread(
                target=post_all,
                args=(url, str(sandbox.ca_file), key, MESSAGES // CLIENTS, ok, errors),
            )
            for _ in range(CLIENTS)
        ]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
    times = sorted(t for t, _ in ok)
    p99 = times[max(0, int(len(times) * 0.99) - 1)] if times else float("nan")
    codes = sorted({code for _, code in errors})
    return [
        ("sms intake: signed SIU per second (one instance)", f"{len(ok) / wall:.1f}/s",
         f"{len(ok)} 2xx from {CLIENTS} clients in {wall:.1f} s; {len(errors)} not 2xx {codes}"),
        ("sms intake: 2xx latency p50 / p99",
         f"{statistics.median(times) * 1000:.0f} / {p99 * 1000:.0f} ms", "L = 0"),
    ]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(*row, sep="  |  ")
