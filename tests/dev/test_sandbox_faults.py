"""The sandbox's injectable faults: hang, trickle, reset, and answers, per route family, for a
number of requests or for a duration (dev/sandbox/state.py `Fault`)."""

from __future__ import annotations

import time

import pytest
import requests

from dev.sandbox.state import FAMILIES, Fault
from lib.net.http import OutboundHttp


def discovery_url(sandbox) -> str:
    return sandbox.ehr_base("epic") + "/.well-known/smart-configuration"


@pytest.mark.parametrize(
    ("family", "method", "path"),
    [
        ("ehr-discovery", "GET", "/epic/api/FHIR/R4/.well-known/smart-configuration"),
        ("ehr-discovery", "GET", "/cerner/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d/metadata"),
        ("ehr-token", "POST", "/epic/oauth2/token"),
        ("ehr-token", "POST", "/cerner/tenants/t/protocols/oauth2/profiles/smart-v1/token"),
        ("ehr-fhir", "GET", "/epic/api/FHIR/R4/Appointment/abc"),
        ("ehr-keys", "GET", "/epic/oauth2/.well-known/openid-configuration"),
        ("entra-token", "POST", "/entra/tenant/oauth2/v2.0/token"),
        ("graph-meetings", "POST", "/graph/v1.0/users/u/onlineMeetings/createOrGet"),
        ("graph-meetings", "PATCH", "/graph/v1.0/users/u/onlineMeetings/m1"),
    ],
)
def test_families_match_their_routes(family, method, path):
    assert Fault(family=family).matches(method, path)


def test_families_do_not_overlap_where_it_matters():
    fhir = Fault(family="ehr-fhir")
    assert not fhir.matches("GET", "/epic/api/FHIR/R4/.well-known/smart-configuration")
    assert not fhir.matches("GET", "/epic/api/FHIR/R4/metadata")
    assert not Fault(family="ehr-token").matches("GET", "/epic/oauth2/authorize")
    assert set(FAMILIES) >= {"ehr-discovery", "ehr-token", "entra-token", "graph-meetings"}


def test_a_fault_needs_a_target_and_a_known_kind():
    with pytest.raises(TypeError):
        Fault()
    with pytest.raises(TypeError):
        Fault(path="/x", kind="explode")
    with pytest.raises(TypeError):
        Fault(family="nobody")


def test_hang_answers_nothing_then_closes(clean_sandbox, sandbox_http):
    clean_sandbox.inject(family="ehr-discovery", kind="hang", seconds=5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        sandbox_http.get(discovery_url(clean_sandbox), timeout=(2, 0.5))
    assert time.monotonic() - started < 3

    clean_sandbox.inject(family="ehr-discovery", kind="hang", seconds=0.3)
    with pytest.raises(requests.exceptions.ConnectionError):
        sandbox_http.get(discovery_url(clean_sandbox), timeout=5)
    assert sandbox_http.get(discovery_url(clean_sandbox), timeout=5).status_code == 200


def test_reset_closes_the_connection(clean_sandbox, sandbox_http):
    clean_sandbox.inject(family="ehr-discovery", kind="reset", count=2)
    for _ in range(2):
        with pytest.raises(requests.exceptions.ConnectionError):
            sandbox_http.get(discovery_url(clean_sandbox), timeout=5)
    assert sandbox_http.get(discovery_url(clean_sandbox), timeout=5).status_code == 200
    statuses = [e.status for e in clean_sandbox.journal.entries(stand_in="epic")]
    assert statuses == [444, 444, 200]


def test_trickle_sends_the_real_answer_a_byte_at_a_time(clean_sandbox, sandbox_http):
    clean_sandbox.inject(family="ehr-discovery", kind="trickle", seconds=0.0005)
    slow = sandbox_http.get(discovery_url(clean_sandbox), timeout=10)
    assert slow.status_code == 200 and "token_endpoint" in slow.json()

    # Each byte comes well within a read timeout: only the exchange's deadline stops it.
    clean_sandbox.inject(family="ehr-discovery", kind="trickle", seconds=0.2)
    http = OutboundHttp(local_mode=True, verify=str(clean_sandbox.ca_file), total_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        http.get(discovery_url(clean_sandbox))
    assert caught.value.code == "DISC-UNREACHABLE" and "too slow" in caught.value.detail
    assert time.monotonic() - started < 3


def test_answers_for_a_duration(clean_sandbox, sandbox_http):
    added = sandbox_http.post(
        f"{clean_sandbox.url}/_sandbox/faults",
        json={"family": "ehr-token", "status": 503, "retry_after": 2, "duration": 0.6},
    )
    assert added.status_code == 201 and added.json()["count"] is None
    token = clean_sandbox.epic.url("/oauth2/token")
    answers = [sandbox_http.post(token, data={}, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [503] * 3
    assert answers[0].headers["Retry-After"] == "2"
    time.sleep(0.7)
    assert sandbox_http.post(token, data={}, timeout=5).status_code != 503  # the stand-in's own
    assert sandbox_http.get(f"{clean_sandbox.url}/_sandbox/faults").json()["faults"] == []
