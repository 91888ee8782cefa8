"""The EHR stops answering in the middle of a launch (its token endpoint hangs, trickles, resets
the connection, answers 503 or 429): the clinician gets the "EHR is not answering" page within
the budget, never a discovery or sign-in error; the operator sees a log line naming the EHR and
the time, and health lists the EHR as failing; started again from the EHR once it answers, the
launch works (nothing cached, no stuck single-use state)."""

from __future__ import annotations

import time

import pytest

from dev.browser import Browser
from tests.e2e.test_launch import endpoints, launch_url, quiet_sandbox  # noqa: F401 - fixtures
from tests.e2e.test_launch_concurrency import APPOINTMENT, new_visit, visits  # noqa: F401
from tests.faults.conftest import BUDGET, SLACK, health, logged_since

TOKEN_FAULTS = {
    "hang": {"kind": "hang", "seconds": BUDGET + 5},
    "trickle": {"kind": "trickle", "seconds": 1.0},
    "reset": {"kind": "reset", "count": None},
    "503": {"status": 503, "retry_after": 1, "count": None},
    "429": {"status": 429, "retry_after": 30, "count": None},
}


def launch(app, clinician: str = "reyes", **mint: str) -> str:
    return launch_url(app, "epic-launch-test", "provider", "epic", clinician=clinician, **mint)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", sorted(TOKEN_FAULTS))
def test_the_ehr_token_endpoint_failing(app, endpoints, faults, fault):  # noqa: F811
    person = Browser(app.sandbox, entra_user="reyes")
    callback = person.to_callback(launch(app))
    mark = len(app.host.log())
    faults.inject(family="ehr-token", **TOKEN_FAULTS[fault])
    started = time.monotonic()
    out = person.go(callback)
    took = time.monotonic() - started

    assert out.response.status_code == 503 and out.error_code == "SRV-EHR-UNAVAILABLE", fault
    assert int(out.response.headers["Retry-After"]) > 0
    assert "EHR is not answering" in out.response.text
    assert took < BUDGET + SLACK, f"{fault}: the page took {took:.1f} s"
    line = next(x for x in logged_since(app, mark).splitlines() if "dependency unavailable" in x)
    assert "ehr" in line and " ms " in line and "token" in line
    assert health(app)["dependencies"]["ehr"].startswith("failing")

    faults.faults.reset()  # the EHR answers again: started again from the EHR, it works
    again = Browser(app.sandbox, entra_user="reyes").go(launch(app))
    assert again.response.status_code == 200 and "/api/visit#" in again.url
    assert health(app)["dependencies"]["ehr"] == "ok"


@pytest.mark.timeout(60)
def test_the_same_sign_in_cannot_be_replayed_but_a_new_one_works(app, endpoints, faults):  # noqa: F811
    """Interrupted at the token call, the browser's back button or a reload finds the sign-in
    used (the EHR's code may have been redeemed); the EHR's next launch is a new sign-in."""
    person = Browser(app.sandbox, entra_user="reyes")
    callback = person.to_callback(launch(app))
    faults.inject(family="ehr-token", kind="reset")
    assert person.go(callback).error_code == "SRV-EHR-UNAVAILABLE"
    assert person.go(callback).error_code == "LAUNCH-STATE-REUSED"
    again = person.go(launch(app))  # the same browser, started again from the EHR
    assert again.response.status_code == 200 and "/api/visit#" in again.url


@pytest.mark.timeout(60)
def test_a_hung_fhir_read_is_the_ehr_not_answering(app, new_visit, faults):  # noqa: F811
    """A new visit's appointment read (alongside Graph's createOrGet) hangs: within the budget,
    the EHR's page; once the EHR answers, the same visit opens."""
    person = Browser(app.sandbox, entra_user="reyes")
    callback = person.to_callback(launch(app, appointment=APPOINTMENT))
    faults.inject(family="ehr-fhir", kind="hang", seconds=BUDGET + 5)
    started = time.monotonic()
    out = person.go(callback)
    took = time.monotonic() - started
    assert out.response.status_code == 503 and out.error_code == "SRV-EHR-UNAVAILABLE"
    assert took < BUDGET + SLACK, f"the page took {took:.1f} s"
    faults.faults.reset()
    again = Browser(app.sandbox, entra_user="reyes").go(launch(app, appointment=APPOINTMENT))
    assert again.response.status_code == 200 and "/api/visit#" in again.url
