"""Where a request's time goes inside the app: probes installed in the bench's app host only.

The bench runs the app under dev.host from a folder of its own (`app_dir`) whose function_app.py
installs these probes and then runs the real function_app.py: production code carries nothing
for them, and no setting turns them on. Each probe times the outermost call of its kind on the
request's thread (a storage call's own HTTP request is storage, not upstream):

- storage: every `Table` / `TableStore` operation (lib/storage/tables.py) and queue send
  (`QueueSender.send`: a visit event), one per round trip;
- upstream: `requests.Session.send` outside storage (EHR, Graph, Entra: the wire, TLS included);
- crypto: PyJWT signing and verifying (id_token, client assertions), sealing (AES-GCM) and the
  keyed hashes and signed tokens of lib/privacy.py;
- render: Jinja2 templates.

After each HTTP request the host handles, one log line sums them up (what `parse` reads):
    probe GET /api/launch/callback 302 total=41.20 storage=7/23.10 upstream=1/5.00 ... |
    storage: create e2eSignIn 3.1, get ...
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KINDS = ("storage", "upstream", "crypto", "render")
log = logging.getLogger("bench.probe")
_local = threading.local()  # `inside`: this thread is in a probed call (per thread)
# The request's tally: a context variable, so the calls a request overlaps on threads of their
# own (lib/net/overlap.py copies the context) are still the request's.
_TALLY: contextvars.ContextVar[dict[str, list[Any]] | None] = contextvars.ContextVar(
    "probe_tally", default=None
)


def _tally() -> dict[str, list[tuple[str, float]]] | None:
    return _TALLY.get()


def _spans() -> list[tuple[float, float]]:
    """When each probed call ran (in the tally of the request, under the key "")."""
    return _TALLY.get()[""]  # type: ignore[index]


def _busy_ms(spans: list[tuple[float, float]]) -> float:
    """The time covered by at least one probed call: parallel ones count once."""
    busy, end = 0.0, 0.0
    for start, stop in sorted(spans):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy * 1000


def _timed(kind: str, fn: Callable[..., Any], label: Callable[..., str]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tally = _tally()
        if tally is None or getattr(_local, "inside", False):
            return fn(*args, **kwargs)  # not in a request, or inside another probe
        _local.inside = True
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _local.inside = False
            _spans().append((started, time.perf_counter()))
            tally[kind].append((label(*args, **kwargs), (time.perf_counter() - started) * 1000))

    return wrapper


def _timed_iteration(
    kind: str, fn: Callable[..., Any], label: Callable[..., str]
) -> Callable[..., Any]:
    """For generators (Table.query): the round trips happen while the caller iterates."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tally, items = _tally(), fn(*args, **kwargs)
        if tally is None or getattr(_local, "inside", False):
            return items

        def timed() -> Any:
            spent = 0.0
            try:
                while True:
                    _local.inside = True
                    started = time.perf_counter()
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                    finally:
                        _local.inside = False
                        _spans().append((started, time.perf_counter()))
                        spent += (time.perf_counter() - started) * 1000
                    yield item
            finally:
                tally[kind].append((label(*args, **kwargs), spent))

        return timed()

    return wrapper


def _patch(
    owner: Any, name: str, kind: str, label: Callable[..., str], timer: Any = _timed
) -> None:
    setattr(owner, name, timer(kind, getattr(owner, name), label))


def _where(request: Any) -> str:
    """`POST token`, `GET Appointment/{id}`, `PATCH onlineMeetings/{id}`: no ids in the log."""
    segments = [s for s in urlsplit(request.url).path.split("/") if s]
    if len(segments) > 1 and re.search(r"\d", segments[-1]):
        return f"{request.method} {segments[-2]}/{{id}}"
    return f"{request.method} {segments[-1] if segments else '/'}"


def install() -> None:
    """Put the probes in place (before the app imports anything) and the per-request line."""
    import jwt
    import requests
    from jinja2 import Template

    from dev.host import serving
    from lib.privacy import PrivacyKeys
    from lib.sealing import Sealer
    from lib.storage.queues import QueueSender
    from lib.storage.tables import Table, TableStore

    for op in ("get", "create", "upsert", "update", "delete", "page", "upsert_many",
               "delete_many"):  # fmt: skip
        _patch(Table, op, "storage", lambda self, *a, _op=op, **k: f"{_op} {self.name}")
    _patch(Table, "query", "storage", lambda self, *a, **k: f"query {self.name}", _timed_iteration)
    _patch(TableStore, "transact", "storage", lambda self, name, *a, **k: f"transact {name}")
    _patch(TableStore, "partition_rows", "storage", lambda self, name, *a, **k: f"rows {name}")
    _patch(TableStore, "client", "storage", lambda self, name, *a, **k: f"table {name}")
    _patch(QueueSender, "send", "storage", lambda self, *a, **k: f"enqueue {self.name}")
    _patch(requests.Session, "send", "upstream", lambda self, req, *a, **k: _where(req))
    for op in ("encode", "decode", "decode_complete"):  # lib calls them as jwt.<op>(...)
        _patch(jwt, op, "crypto", lambda *a, _op=op, **k: f"jwt {_op}")
    for op in ("seal", "open"):
        _patch(Sealer, op, "crypto", lambda *a, _op=op, **k: _op)
    for op in ("keyed_hash", "sign", "verify"):
        _patch(PrivacyKeys, op, "crypto", lambda *a, _op=op, **k: f"hmac {_op}")
    _patch(Template, "render", "render", lambda self, *a, **k: self.name or "template")

    # Work the request hands to a pool thread (the appointment read alongside createOrGet) is
    # still the request's: parallel calls then add up to more than the hop's time.
    submit = ThreadPoolExecutor.submit

    def submit_probed(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        tally = _tally()

        def run() -> Any:
            token = _TALLY.set(tally)
            try:
                return fn(*args, **kwargs)
            finally:
                _TALLY.reset(token)

        return submit(self, run)

    ThreadPoolExecutor.submit = submit_probed  # type: ignore[method-assign]

    dispatch = serving.HttpApp.dispatch

    def probed(self: Any, request: Any) -> Any:
        tally: dict[str, list[Any]] = {kind: [] for kind in (*KINDS, "")}
        token = _TALLY.set(tally)
        started = time.perf_counter()
        try:
            response = dispatch(self, request)
        finally:
            _TALLY.reset(token)
            total = (time.perf_counter() - started) * 1000
        sums = " ".join(f"{k}={len(tally[k])}/{sum(ms for _, ms in tally[k]):.2f}" for k in KINDS)
        detail = ", ".join(f"{what} {ms:.1f}" for what, ms in tally["storage"])
        upstream = ", ".join(f"{what} {ms:.1f}" for what, ms in tally["upstream"])
        busy = _busy_ms(tally[""])  # type: ignore[arg-type]
        log.info(
            "probe %s %s %d total=%.2f busy=%.2f %s | storage: %s | upstream: %s",
            request.method, request.path, response.status_code, total, busy, sums, detail,
            upstream,
        )  # fmt: skip
        return response

    serving.HttpApp.dispatch = probed


def app_dir(folder: Path, root: Path) -> Path:
    """A folder dev.host can serve: the probes, then the real function_app.py and host.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "host.json").write_text((root / "host.json").read_text())
    (folder / "function_app.py").write_text(
        "from bench.probes import install\n"
        "install()\n"
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_function_app', {str(root / 'function_app.py')!r})\n"  # noqa: E501
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        "app = _module.app\n"
    )
    return folder


# --- reading the lines back (in the bench's process) --------------------------------------------

LINE = re.compile(
    r"probe (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d+) total=(?P<total>[\d.]+) "
    r"busy=(?P<busy>[\d.]+) "
    + " ".join(rf"{k}=(?P<{k}_n>\d+)/(?P<{k}_ms>[\d.]+)" for k in KINDS)
    + r" \| storage: (?P<storage>.*?) \| upstream: (?P<upstream>.*)$",
    re.M,
)


@dataclass
class Probe:
    """One request as the app handled it."""

    method: str
    path: str
    total_ms: float
    busy_ms: float  # covered by probed calls (parallel ones once)
    counts: dict[str, int] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    storage: str = ""  # each call: "get Visits 3.1, ..."
    upstream: str = ""

    @property
    def other_ms(self) -> float:
        """The app's own Python: the rest of the request inside the host's dispatch."""
        return self.total_ms - self.busy_ms


def parse(text: str) -> list[Probe]:
    return [
        Probe(
            m["method"],
            m["path"],
            float(m["total"]),
            float(m["busy"]),
            {k: int(m[f"{k}_n"]) for k in KINDS},
            {k: float(m[f"{k}_ms"]) for k in KINDS},
            m["storage"],
            m["upstream"],
        )
        for m in LINE.finditer(text)
    ]
