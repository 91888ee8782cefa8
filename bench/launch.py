"""The provider launch against the outside world's latency, and concurrent launches of one visit.

1. Critical path. The sandbox adds a fixed latency L to every EHR, Entra and Graph answer. A
   clinician already signed in (mapping present; a warm-up launch has cached discovery, JWKS and
   the Graph token) launches from the EHR: launch URL -> authorize -> callback -> visit page. The
   launch cannot be faster than (the chain of dependent outbound calls) x L; those calls are read
   from the sandbox's journal for every measured launch (discovery, JWKS, OpenID configuration
   and the Entra token are cacheable and not counted: seeing one there is a finding), and calls
   that ran at the same time count once. Each call needs the previous one's answer (the code, the
   access token, the meeting id), except a new visit's appointment read and Graph's createOrGet:
   createOrGet goes out with provisional times while the appointment is read, and the real times
   ride in the lobby PATCH that follows anyway (lib/launch/complete.py), so the chain of a new
   visit is authorize, token, (read | createOrGet), PATCH. Reported: the median launch at L
   over that floor, goal <= 1.25x, for an existing visit and for a new one (meeting created:
   createOrGet + the lobby PATCH; the demo chart has four appointments, so before each run the
   appointment is made new again by deleting its visit row and its meeting). The same launches at
   L = 0 (our own overhead) are measured interleaved in the same run so the ratio can be read,
   with the time the app's EHR / Graph calls took as its log reports them, and the stand-ins' own
   share of it from the journal: the difference is connection handling, not our code.
   Per hop (launch URL, authorize at the EHR, callback, visit page, the page's status fetch):
   the browser's time split into the app's storage round trips, upstream calls, crypto and
   rendering (probes in the bench's own app host, bench/probes.py: nothing in production), the
   rest of our Python, and the host + HTTP around the app (the browser's time minus the app's).
2. 50 concurrent launches of one fresh appointment (on the Cerner-like endpoint, where nobody has
   launched it) by the three demo clinicians, each signed in once before through the normal flow:
   exactly one meeting must exist for it in the Graph stand-in, made by one createOrGet and one
   lobby PATCH (the claimant's: lib/visits/opening.py); launches per second, at L = 0.

Everything runs on free ports and is stopped at the end, also on error: Azurite in memory, the
sandbox in-process with its state in a temporary folder, the app under dev.host (dev/stack.py).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from azure.data.tables import TableServiceClient

from bench import probes
from dev.browser import Browser, Outcome
from dev.procs import ROOT
from dev.stack import Stack
from dev.stack import running as stack_running

LATENCY = 0.050
ROUNDS = 7
CONCURRENT = 50
GOAL = 1.25
EPIC, CERNER = "epic-sandbox-test", "cerner-sandbox-test"  # the ids dev/seed.py registers
CLINICIANS = ("reyes", "okafor", "lindqvist")
PREFIX = "bench"


def visit_data(
    browser: Browser, outcome: Outcome, hooks: list[Any] | None = None
) -> dict[str, Any]:
    """What the visit page's script fetches: the visit, with the token from the fragment."""
    base = outcome.url.split("#", 1)[0]
    token = urlsplit(outcome.url).fragment
    resp = requests.get(
        f"{base}/status",
        headers={"X-Visit-Token": token},
        timeout=30,
        verify=browser.s.verify,  # the app's certificate is from the sandbox CA
        hooks={"response": hooks or []},
    )
    resp.raise_for_status()
    return resp.json()


# lib/smart/http.py and lib/teams/graph.py log every call: "outbound GET host/path -> 200 in 3 ms";
# not the Graph subscriptions, call records and attendance reports of the graph-tasks queue,
# which run beside the launches (for the visits launched before) and are none of theirs.
OUTBOUND_LOG = re.compile(
    r" (?:outbound|graph) [A-Z]+ (?!\S*(?:subscriptions|communications|attendanceReports))\S+ "
    r"-> \S+ in (\d+) ms"
)
BACKGROUND = ("*/subscriptions*", "*/communications/*", "*/attendanceReports*")

# What the sandbox journal shows, in words; the cacheable ones must not appear once warm.
CALLS = (
    ("*/authorize", "authorize (browser->EHR)", False),
    ("/entra/*/token", "Entra token", True),
    ("*/token", "EHR token", False),
    ("*/Appointment/*", "FHIR Appointment read", False),
    ("*/Encounter/*", "FHIR Encounter read", False),
    ("*/createOrGet", "Graph createOrGet", False),
    ("*/.well-known/*", "discovery / OpenID configuration", True),
    ("*/metadata", "FHIR metadata", True),
    ("*/PublicKeys/*", "JWKS", True),
    ("*/jwk*", "JWKS", True),
)


def launch_url(stack: Stack, endpoint: str, vendor: str, clinician: str, appointment: str) -> str:
    minted = getattr(stack.sandbox, vendor).mint_launch(
        "provider", clinician=clinician, appointment=appointment
    )
    query = urlencode({"iss": minted.iss, "launch": minted.token})
    return f"{stack.url}/api/launch/{endpoint}/provider?{query}"


# --- one launch ------------------------------------------------------------------------------


@dataclass
class Hop:
    """One request of the launch as the browser timed it, and what the app did in it."""

    name: str
    seconds: float  # to the answer's headers, as the browser saw it
    probe: probes.Probe | None = None  # the app's side (None: not the app's request)
    standin_ms: float | None = None  # the EHR's side of the authorize hop (latency included)


@dataclass
class Launch:
    seconds: float
    hops: list[Hop]  # the browser's requests, in order
    calls: list[tuple[str, bool]]  # the sandbox's journal: (what, cacheable)
    stages: tuple[tuple[str, ...], ...]  # the uncacheable calls, those that overlapped together
    app_calls: int  # the calls the app made (everything but the browser's authorize)
    app_calls_ms: float  # those calls as the app's log times them
    standin_ms: float  # the same calls' time inside the stand-ins (latency included)
    outcome: Outcome


def _label(entry: Any) -> tuple[str, bool]:
    if entry.stand_in == "graph" and entry.method == "PATCH":
        return "Graph PATCH (lobby)", False
    for pattern, label, cacheable in CALLS:
        if fnmatchcase(entry.path, pattern):
            return label, cacheable
    return f"{entry.stand_in} {entry.method} {entry.path}", False


def _stages(entries: list[Any]) -> tuple[tuple[str, ...], ...]:
    """The uncacheable calls in the order they ran, those that overlapped in time grouped: the
    chain of dependent calls. (The journal records each call when it ends, with its duration.)"""
    spans = sorted((e.time - e.duration_ms / 1000, e.time, *_label(e)) for e in entries)
    stages: list[list[str]] = []
    end = 0.0
    for start, stop, label, cacheable in spans:
        if cacheable:
            continue
        if stages and start < end - 0.001:  # began before the previous stage ended
            stages[-1].append(label)
            end = max(end, stop)
        else:
            stages.append([label])
            end = stop
    return tuple(tuple(stage) for stage in stages)


def _hop(resp: requests.Response, stack: Stack) -> str:
    path = urlsplit(resp.url).path
    if not resp.url.startswith(stack.url):
        return "authorize (EHR)" if path.endswith("/authorize") else path
    return next(
        (name for part, name in (("/launch/callback", "callback"), ("/launch/", "launch URL"),
                                 ("/visit/status", "visit status"), ("/visit", "visit page"))
         if part in path),
        path,
    )  # fmt: skip


def launch(stack: Stack, browser: Browser, url: str) -> Launch:
    hops: list[Hop] = []
    log_at = [len(stack.host.log())]

    def record(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        # The app writes its probe line before it answers: the new lines are this request's.
        text = stack.host.log()
        found = probes.parse(text[log_at[0] :]) if resp.url.startswith(stack.url) else []
        log_at[0] = len(text)
        hops.append(
            Hop(_hop(resp, stack), resp.elapsed.total_seconds(), found[-1] if found else None)
        )

    browser.s.hooks["response"] = [record]
    log_from = log_at[0]
    since = time.time()
    started = time.perf_counter()
    outcome = browser.go(url)
    # The page is a shell until its script fetches the visit (token from the URL fragment):
    # the clinician sees the visit only then, so that call is part of the launch.
    if outcome.response.status_code != 200 or "/api/visit#" not in outcome.url:
        raise RuntimeError(f"launch failed: {outcome.response.status_code} {outcome.error_code}")
    visit_data(browser, outcome, [record])
    seconds = time.perf_counter() - started
    browser.s.hooks["response"] = []
    entries = [
        e
        for e in stack.sandbox.journal.entries(since=since)
        if not any(fnmatch.fnmatchcase(e.path, glob) for glob in BACKGROUND)
    ]
    by_app = [e for e in entries if not e.path.endswith("/authorize")]
    authorize = [e.duration_ms for e in entries if e.path.endswith("/authorize")]
    for hop in hops:
        if hop.name == "authorize (EHR)" and authorize:
            hop.standin_ms = authorize.pop(0)
    return Launch(
        seconds,
        hops,
        [_label(e) for e in entries],
        _stages(entries),
        len(by_app),
        sum(float(ms) for ms in OUTBOUND_LOG.findall(stack.host.log()[log_from:])),
        sum(e.duration_ms for e in by_app),
        outcome,
    )


# --- 1. the critical path ------------------------------------------------------------------


class Forget:
    """Make an appointment new again: no visit row, no meeting in the Graph stand-in."""

    def __init__(self, stack: Stack) -> None:
        service = TableServiceClient.from_connection_string(stack.storage)
        self.visits = service.get_table_client(f"{PREFIX}Visits")
        self.graph = stack.sandbox.graph

    def meetings(self) -> dict[str, str]:
        return {m.id: m.external_id for m in self.graph.meetings.matching(lambda m: True)}

    def __call__(self, visit_key: str) -> None:
        self.visits.delete_entity(partition_key=visit_key, row_key="visit")
        for meeting in self.graph.meetings.matching(lambda m: m.external_id == visit_key):
            self.graph.meetings.delete(meeting.id)


def critical_path(stack: Stack) -> list[tuple[str, str, str]]:
    forget = Forget(stack)
    browser = Browser(stack.sandbox, entra_user="reyes")
    existing, new = "reyes-0900", "reyes-0930"
    first = launch(stack, browser, launch_url(stack, EPIC, "epic", "reyes", existing))
    if not first.outcome.signed_in:
        raise RuntimeError("the warm-up launch should have signed in to Microsoft")
    before = forget.meetings()
    launch(stack, browser, launch_url(stack, EPIC, "epic", "reyes", new))  # warm, and its key
    (visit_key,) = {k for i, k in forget.meetings().items() if i not in before}

    runs: dict[tuple[str, float], list[Launch]] = {}
    for _ in range(ROUNDS):
        for latency in (LATENCY, 0.0):  # interleaved: the machine is shared and noisy
            stack.sandbox.set_latency(latency)
            for kind, appointment in (("existing", existing), ("new", new)):
                if kind == "new":
                    forget(visit_key)
                url = launch_url(stack, EPIC, "epic", "reyes", appointment)
                runs.setdefault((kind, latency), []).append(launch(stack, browser, url))
    stack.sandbox.set_latency(0.0)
    browser.close()

    rows: list[tuple[str, str, str]] = []
    hops: list[tuple[str, str, str]] = []
    for kind in ("existing", "new"):
        at_l, at_0 = runs[(kind, LATENCY)], runs[(kind, 0.0)]
        if any(run.outcome.signed_in for run in at_l + at_0):
            raise RuntimeError("a measured launch went through the Microsoft sign-in")
        floor_calls, varied = _usual_calls(at_l + at_0)
        cached = sorted({label for label, cacheable in floor_calls if cacheable})
        # The chain from the launches at L (at L = 0 overlapping calls need not overlap in time).
        chain = Counter(run.stages for run in at_l).most_common(1)[0][0]
        counted = [" | ".join(stage) if len(stage) == 1 else f"({' | '.join(stage)})"
                   for stage in chain]  # fmt: skip
        floor = len(chain) * LATENCY
        med_l = statistics.median(r.seconds for r in at_l)
        med_0 = statistics.median(r.seconds for r in at_0)
        label = f"launch, {kind} visit"
        calls = " -> ".join(counted) + (f"; NOT CACHED: {', '.join(cached)}" if cached else "")
        overlapped = sum(len(stage) for stage in chain) - len(chain)
        calls += "; the calls in ( | ) ran at the same time" if overlapped else ""
        calls += "; some launches made other calls" if varied else ""
        app_calls = statistics.median(r.app_calls_ms for r in at_0)
        standins = statistics.median(r.standin_ms for r in at_0)
        rows += [
            (f"{label}, L={LATENCY * 1000:.0f} ms (median)", _ms(med_l), _hops(at_l)),
            (f"{label}, L=0 (median)", _ms(med_0), _hops(at_0)),
            (
                f"{label}, L=0: the app's EHR/Graph calls",
                f"{app_calls:.0f} ms",
                f"{at_0[0].app_calls} calls as the app's log times them, of which the stand-ins' "
                f"own work {standins:.1f} ms (the rest: connection set-up); the remainder of the "
                "L=0 time is our own (storage, crypto, pages)",
            ),
            (f"{label}: floor {len(counted)} x L", _ms(floor), calls),
            (f"{label}: time / floor", f"{med_l / floor:.2f}x", f"goal <= {GOAL}x"),
        ]
        hops += per_hop(f"hop, {kind} visit, L={LATENCY * 1000:.0f} ms", at_l)
        hops += per_hop(f"hop, {kind} visit, L=0", at_0)
    return rows + hops


def _usual_calls(runs: list[Launch]) -> tuple[list[tuple[str, bool]], bool]:
    """The outbound calls most launches made, and whether any launch made others."""
    seen = Counter(tuple(sorted(run.calls)) for run in runs)  # overlapping calls: either order
    return list(seen.most_common(1)[0][0]), len(seen) > 1


def _hops(runs: list[Launch]) -> str:
    names = [hop.name for hop in runs[0].hops]
    medians = [statistics.median(run.hops[i].seconds for run in runs) for i in range(len(names))]
    return "browser hops: " + ", ".join(
        f"{name} {m * 1000:.0f}" for name, m in zip(names, medians, strict=True)
    )


def per_hop(label: str, runs: list[Launch]) -> list[tuple[str, str, str]]:
    """Each browser hop of these launches, split into where its time went (medians per part).

    app: the host's dispatch of the request (bench/probes.py): storage round trips, upstream
    calls (EHR / Graph, the wire included), crypto (JWS, AES-GCM, HMAC), rendering, and the rest
    of our Python ("own"). host+HTTP: the browser's time minus the app's: HTTP parsing and
    writing in the host, loopback TCP, the client. For the EHR's authorize: the stand-in's time
    (its latency included) and the rest. Calls made in parallel add up to more than the time
    they took together; "own" counts the time no probed call was running.
    """
    rows = []
    names = [hop.name for hop in runs[0].hops]
    for i, name in enumerate(names):
        hops = [run.hops[i] for run in runs if len(run.hops) == len(names)]
        browser = statistics.median(h.seconds * 1000 for h in hops)
        found = [h.probe for h in hops if h.probe is not None]
        if len(found) == len(hops):
            med = statistics.median
            parts = ", ".join(
                f"{kind} {med(p.counts[kind] for p in found):.0f}x "
                f"{med(p.ms[kind] for p in found):.1f}"
                for kind in probes.KINDS
            )
            app = med(p.total_ms for p in found)
            own = med(p.other_ms for p in found)
            host = med(h.seconds * 1000 - h.probe.total_ms for h in hops if h.probe)
            note = f"app {app:.1f} ms = {parts}, own {own:.1f}; host+HTTP {host:.1f}"
            for kind in ("storage", "upstream"):
                if any(getattr(p, kind) for p in found):
                    note += f" | {kind}: " + _calls([getattr(p, kind) for p in found])
        elif all(h.standin_ms is not None for h in hops):
            ehr = statistics.median(h.standin_ms for h in hops)  # type: ignore[misc]
            note = (
                f"the EHR stand-in {ehr:.1f} ms (latency included); browser/TLS {browser - ehr:.1f}"
            )
        else:
            note = "not the app's request"
        rows.append((f"{label}: {name}", f"{browser:.1f} ms", note))
    return rows


def _calls(lists: list[str]) -> str:
    """Calls as the probe lines list them ("get Visits 3.1, ..."), with the median ms of each
    over the runs (calls that ran in parallel may come in either order)."""
    runs: list[dict[str, float]] = []
    for text in lists:
        seen: Counter[str] = Counter()
        run = {}
        for call in filter(None, text.split(", ")):
            name, ms = call.rsplit(" ", 1)
            seen[name] += 1
            run[f"{name}#{seen[name]}"] = float(ms)
        runs.append(run)
    if any(run.keys() != runs[0].keys() for run in runs):
        return lists[0] + " (the first run; others made other calls)"
    return ", ".join(
        f"{key.split('#')[0]} {statistics.median(run[key] for run in runs):.1f}" for key in runs[0]
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- 2. concurrent launches of one appointment ------------------------------------------------


def concurrent(stack: Stack) -> list[tuple[str, str, str]]:
    """On the Cerner-like endpoint, where nobody has launched `okafor-1000` yet."""
    stack.sandbox.set_latency(0.0)
    for clinician in CLINICIANS:  # one Microsoft sign-in each, through the normal flow
        browser = Browser(stack.sandbox, entra_user=clinician)
        url = launch_url(stack, CERNER, "cerner", clinician, "reyes-0900")
        if not launch(stack, browser, url).outcome.signed_in:
            raise RuntimeError(f"{clinician} should have signed in to Microsoft once")
        browser.close()
    appointment = "okafor-1000"
    urls = [
        launch_url(stack, CERNER, "cerner", CLINICIANS[i % len(CLINICIANS)], appointment)
        for i in range(CONCURRENT)
    ]
    browsers = [
        Browser(stack.sandbox, entra_user=CLINICIANS[i % len(CLINICIANS)])
        for i in range(CONCURRENT)
    ]
    before = set(Forget(stack).meetings())
    outcomes: list[Outcome | BaseException] = [RuntimeError("not run")] * CONCURRENT
    gate = threading.Barrier(CONCURRENT + 1)

    def one(i: int) -> None:
        gate.wait()
        try:
            outcomes[i] = browsers[i].go(urls[i])
        except BaseException as exc:  # reported below, with the others
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    for t in threads:
        t.start()
    since = time.time()
    gate.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for b in browsers:
        b.close()

    failed = [o for o in outcomes if not isinstance(o, Outcome) or o.response.status_code != 200]
    if failed:
        raise RuntimeError(f"{len(failed)} of {CONCURRENT} launches failed, e.g. {failed[0]!r}")
    if any(o.signed_in for o in outcomes):  # type: ignore[union-attr]
        raise RuntimeError("a pre-mapped clinician was sent to the Microsoft sign-in")
    joins = {visit_data(b, o)["join_url"] for b, o in zip(browsers, outcomes, strict=True)}
    made = set(Forget(stack).meetings()) - before
    calls = stack.sandbox.journal.entries(stand_in="graph", path="*/createOrGet", since=since)
    created = sum(1 for e in calls if e.status == 201)
    patches = len(stack.sandbox.journal.entries(stand_in="graph", method="PATCH", since=since))
    if len(made) != 1 or created != 1 or len(joins) != 1:
        raise RuntimeError(
            f"one appointment, {len(made)} meetings made, {created} created by createOrGet, "
            f"{len(joins)} join URLs on the visit pages"
        )
    return [
        (
            f"{CONCURRENT} concurrent launches, one appointment",
            f"{len(made)} meeting",
            f"{len(CLINICIANS)} clinicians round-robin; createOrGet x{len(calls)} "
            f"({created} created), PATCH x{patches}; 1 join URL on all {CONCURRENT} pages",
        ),
        (
            f"{CONCURRENT} concurrent launches, throughput",
            f"{CONCURRENT / wall:.1f} /s",
            f"all {CONCURRENT} in {wall:.2f} s, L=0",
        ),
    ]


def running(
    prefix: str, overrides: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[Stack]:
    """dev.stack.running(), with the app served from a folder whose function_app.py installs
    bench/probes.py first: the probes exist in this host only."""
    return stack_running(
        prefix, app=lambda folder: probes.app_dir(folder / "app", ROOT), overrides=overrides
    )


def run() -> list[tuple[str, str, str]]:
    with running(PREFIX) as stack:
        return critical_path(stack) + concurrent(stack)
