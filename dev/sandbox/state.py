"""What every stand-in shares: the request journal, injected faults, latency, settings.

Tests and benchmarks drive these through the Python API (``Sandbox.journal``, ``.faults``) or
through the control endpoints under ``/_sandbox/`` (see ``control.py``).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dev.sandbox.standin import StandIn

# A long `make run` must not grow without bound; tests reset long before this.
JOURNAL_LIMIT = 20_000


@dataclass(frozen=True)
class JournalEntry:
    """One request to a stand-in. Query *keys* only: values may carry codes or tokens."""

    stand_in: str
    method: str
    path: str
    query_keys: tuple[str, ...]
    time: float
    status: int = 0
    duration_ms: float = 0.0
    faulted: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["query_keys"] = list(self.query_keys)
        return data


def _matches(
    entry: JournalEntry,
    stand_in: str | None,
    method: str | None,
    path: str | None,
    since: float | None,
) -> bool:
    return (
        (stand_in is None or entry.stand_in == stand_in)
        and (method is None or entry.method == method.upper())
        and (path is None or fnmatch.fnmatchcase(entry.path, path))
        and (since is None or entry.time >= since)
    )


class Journal:
    """Thread-safe record of every stand-in request, newest last."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=limit)
        self._cond = threading.Condition()

    def record(self, entry: JournalEntry) -> None:
        with self._cond:
            self._entries.append(entry)
            self._cond.notify_all()

    def entries(
        self,
        stand_in: str | None = None,
        method: str | None = None,
        path: str | None = None,
        since: float | None = None,
    ) -> list[JournalEntry]:
        """Entries matching every given filter; ``path`` is a glob such as ``/entra/*/token``."""
        with self._cond:
            snapshot = list(self._entries)
        return [e for e in snapshot if _matches(e, stand_in, method, path, since)]

    def count(self, **filters: Any) -> int:
        return len(self.entries(**filters))

    def wait_for(self, timeout: float = 5.0, **filters: Any) -> JournalEntry:
        """Block until a matching entry exists (for flows that call out asynchronously)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self._entries if _matches(e, **_filter_args(filters))]
                if found:
                    return found[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no sandbox request matching {filters} in {timeout}s")
                self._cond.wait(remaining)

    def reset(self) -> None:
        with self._cond:
            self._entries.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)


def _filter_args(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: filters.get(k) for k in ("stand_in", "method", "path", "since")}


# Route families a fault can name instead of a path glob (``{"family": "ehr-token"}``).
FAMILIES: dict[str, tuple[str, ...]] = {
    "ehr-discovery": (
        "/*/api/FHIR/*/.well-known/*", "/*/api/FHIR/*/metadata",
        "/cerner/r4/*/.well-known/*", "/cerner/r4/*/metadata",
    ),
    "ehr-authorize": ("/epic/oauth2/authorize", "/cerner/tenants/*/authorize"),
    "ehr-token": ("/epic/oauth2/token", "/cerner/tenants/*/token"),
    "ehr-keys": (
        "/epic/oauth2/.well-known/*", "/epic/api/epic/*/Security/*",
        "/cerner/tenants/*/oidc/*", "/cerner/jwk",
    ),
    "ehr-fhir": ("/*/api/FHIR/*/[A-Z]*", "/cerner/r4/*/[A-Z]*"),  # reads: a resource type
    # write-back: Epic's telehealth status service, and Appointment reads and PATCHes
    "ehr-writeback": (
        "/epic/api/epic/*/Telehealth/*", "/*/api/FHIR/R4/Appointment/*",
        "/cerner/r4/*/Appointment/*",
    ),
    "entra-token": ("/entra/*/oauth2/v2.0/token",),
    "entra-keys": ("/entra/*/discovery/v2.0/keys", "/entra/*/v2.0/.well-known/*"),
    "graph-meetings": ("/graph/v1.0/users/*/onlineMeetings*",),
    "graph": ("/graph/v1.0/*",),
    "graph-beta": ("/graph/beta/*",),
    # Outbound: the change notifications Graph posts to the app (any fault drops the delivery).
    "graph-notifications": ("/graph/_notify/*",),
}  # fmt: skip
KINDS = ("answer", "hang", "trickle", "reset")


@dataclass
class Fault:
    """Make matching requests misbehave: the next ``count`` of them, or all of them for
    ``duration`` seconds from when the fault is added (``count=None`` with no duration: until
    reset).

    What matches: ``path``, a glob over the full path
    (``/graph/v1.0/users/*/onlineMeetings/createOrGet``), or ``family``, a name from
    ``FAMILIES`` (``ehr-token``); ``method`` narrows either.

    What happens (``kind``):
    - ``answer`` (default): answer ``status`` with ``body`` / ``headers`` / ``retry_after``
      instead of the stand-in; ``delay`` sleeps first; with ``after=True`` the stand-in still
      handles the request (its side effects happen) and only the answer is replaced: a lost
      response.
    - ``hang``: no answer for ``seconds``, then the connection is closed without one.
    - ``trickle``: the stand-in's real answer, its body sent one byte every ``seconds``.
    - ``reset``: the connection is closed at once, without an answer.
    """

    path: str = ""
    status: int = 500
    body: str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None
    count: int | None = 1
    method: str | None = None
    after: bool = False
    delay: float = 0.0
    kind: str = "answer"
    seconds: float = 30.0
    family: str | None = None
    duration: float | None = None
    # Each matching request is hit with this probability (None: every one); a miss passes the
    # request on to the next fault or the stand-in, and does not count against ``count``.
    rate: float | None = None
    added_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TypeError(f"kind must be one of {KINDS}")
        if self.family is not None and self.family not in FAMILIES:
            raise TypeError(f"family must be one of {sorted(FAMILIES)}")
        if not self.path and self.family is None:
            raise TypeError("give a path glob or a family")
        if self.duration is not None:
            self.count = None  # a duration, not a number of requests

    @property
    def expired(self) -> bool:
        return self.duration is not None and time.monotonic() - self.added_at >= self.duration

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        globs = FAMILIES[self.family] if self.family else (self.path,)
        return any(fnmatch.fnmatchcase(path, glob) for glob in globs)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("added_at")
        if self.duration is not None:
            left = self.duration - (time.monotonic() - self.added_at)
            data["remaining"] = round(max(0.0, left), 1)
        return data


class Faults:
    """Injected faults, consumed first-added first."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, path: str = "", **kwargs: Any) -> Fault:
        fault = Fault(path=path, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any, counting it as used."""
        with self._lock:
            self._faults = [f for f in self._faults if not f.expired]
            for fault in self._faults:
                if fault.matches(method, path) and (
                    fault.rate is None or random.random() < fault.rate  # noqa: S311 (not a secret)
                ):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            self._faults = [f for f in self._faults if not f.expired]
            return list(self._faults)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass
class LatencyConfig:
    """Fixed delay added before each stand-in answers; per stand-in values override the default."""

    default: float = 0.0
    per_stand_in: dict[str, float] = field(default_factory=dict)

    def for_stand_in(self, name: str) -> float:
        return self.per_stand_in.get(name, self.default)


@dataclass
class SandboxState:
    """Shared by the servers and every stand-in. Once the ports are bound, ``origins`` maps each
    stand-in's name (and ``origins.CONTROL``) to its origin; ``base_url`` is the control one."""

    state_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    journal: Journal = field(default_factory=Journal)
    faults: Faults = field(default_factory=Faults)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    initial_latency: float = 0.0
    base_url: str = ""
    origins: dict[str, str] = field(default_factory=dict)
    stand_ins: dict[str, StandIn] = field(default_factory=dict)

    def setting(self, name: str, default: str) -> str:
        return self.settings.get(name) or default

    def set_latency(
        self, default: float | None = None, per_stand_in: Mapping[str, float] | None = None
    ) -> None:
        if default is not None:
            self.latency.default = float(default)
        if per_stand_in is not None:
            self.latency.per_stand_in = {k: float(v) for k, v in per_stand_in.items()}

    def configure_connector(self, **where: Any) -> None:
        for stand_in in self.stand_ins.values():
            stand_in.configure_connector(**where)

    def reset(self, names: Iterable[str] | None = None) -> None:
        """Clear journal and faults, restore latency, and let stand-ins drop per-test state."""
        self.journal.reset()
        self.faults.reset()
        self.latency = LatencyConfig(default=self.initial_latency)
        for name, stand_in in self.stand_ins.items():
            if names is None or name in names:
                stand_in.on_reset()
