"""The join link in a text (F15), over real HTTP: it opens the visit's meeting lobby and records
the patient as connected; tampered, early, expired, superseded and cancelled links get a page
with their code and what to do."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from dev.sandbox.directory import USERS
from dev.stack import settings_env
from lib.privacy import PrivacyKeys
from lib.sms import joinlink
from lib.storage import TableStore
from lib.visits.store import Visit, VisitStore
from tests.e2e.test_sms_config_api import cerner_endpoint

ORGANIZER = next(u.object_id for u in USERS if u.key == "reyes")


@pytest.fixture(scope="module")
def privacy() -> PrivacyKeys:
    return PrivacyKeys(settings_env()["CONNECTOR_HASH_KEY"])  # the app's key in the tests


@pytest.fixture(scope="module")
def visits(app) -> VisitStore:
    service = TableServiceClient.from_connection_string(app.storage)
    return VisitStore(TableStore(service, "e2e"))


@pytest.fixture(scope="module")
def endpoint(app) -> str:
    return cerner_endpoint(app, app.session("admin"))


def a_visit(
    visits: VisitStore,
    endpoint: str,
    starts_in: timedelta,
    version: int = 1,
    cancelled: bool = False,
) -> Visit:
    """A visit as scheduling intake leaves it: a key, times, a version, no meeting yet."""
    now = datetime.now(UTC)
    start = now + starts_in
    visit = Visit(
        partition_key=secrets.token_hex(16),
        row_key="visit",
        endpoint_id=endpoint,
        organizer_oid=ORGANIZER,
        start=start,
        end=start + timedelta(minutes=30),
        created_at=now,
        created_by_role="schedule",
        schedule_version=version,
        cancelled_at=now if cancelled else None,
    )
    return visits.claim(visit).entity


def follow(app, privacy, visit: Visit, version: int | None = None):
    ref = joinlink.JoinRef(visit.key, visit.schedule_version if version is None else version)
    token = joinlink.make(privacy, ref)
    return app.session().get(
        app.api(f"j/{token}"), allow_redirects=False, timeout=30, headers={"Accept": "text/html"}
    ), token


def test_the_link_opens_the_lobby_and_the_patient_is_connected(app, privacy, visits, endpoint):
    visit = a_visit(visits, endpoint, timedelta(minutes=10))
    answer, token = follow(app, privacy, visit)
    assert answer.status_code == 302, answer.text
    opened = visits.get(visit.key)
    assert answer.headers["Location"] == opened.join_url and "/graph/meet/" in opened.join_url
    assert answer.headers["Referrer-Policy"] == "no-referrer"  # the token is in the path
    # The patient's arrival travels the visit-events queue like every source's: within seconds.
    deadline = time.monotonic() + 30
    while not (events := visits.events(visit.key)) and time.monotonic() < deadline:
        time.sleep(0.2)
    [event] = events
    assert (event.kind, event.role, event.source) == ("arrived", "patient", "sms")
    meeting = app.sandbox.graph.meeting_for(ORGANIZER, visit.key)
    assert meeting is not None  # one meeting, under the visit's organizer
    again, _ = follow(app, privacy, visit)  # a second tap: the same meeting
    assert again.headers["Location"] == opened.join_url
    assert len(token) == 40 and len(app.api(f"j/{token}")) < 90


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("tampered", 404, "SMS-LINK-INVALID"),
        ("early", 403, "SMS-LINK-EARLY"),
        ("expired", 410, "SMS-LINK-EXPIRED"),
        ("superseded", 410, "SMS-LINK-SUPERSEDED"),
        ("cancelled", 410, "SMS-LINK-CANCELLED"),
        ("unknown visit", 404, "SMS-LINK-INVALID"),
    ],
)
def test_a_link_that_cannot_open_says_why(app, privacy, visits, endpoint, case, status, code):
    starts_in = {"early": timedelta(hours=3), "expired": timedelta(hours=-5)}.get(
        case, timedelta(minutes=5)
    )
    visit = a_visit(visits, endpoint, starts_in, version=3, cancelled=case == "cancelled")
    if case == "tampered":
        token = joinlink.make(privacy, joinlink.JoinRef(visit.key, 3))
        token = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        answer = app.session().get(
            app.api(f"j/{token}"),
            headers={"Accept": "text/html"},
            allow_redirects=False,
            timeout=30,
        )
    elif case == "unknown visit":
        visit = visit.model_copy(update={"partition_key": uuid.uuid4().hex})
        answer, _ = follow(app, privacy, visit)
    else:
        answer, _ = follow(app, privacy, visit, version=2 if case == "superseded" else None)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    assert code in answer.text and "Traceback" not in answer.text
    assert visits.events(visit.key) == []  # nobody connected
    if case == "early":
        assert "It opens at" in answer.text
