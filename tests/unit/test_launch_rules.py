"""Small launch rules that need no servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lib.endpoints.models import Endpoint, LaunchOptions
from lib.launch.complete import practitioners
from lib.visits.opening import presenters_for

ORG = "11111111-2222-4333-8444-555555555555"
OTHER = "99999999-2222-4333-8444-555555555555"


def endpoint(**launch) -> Endpoint:
    now = datetime.now(UTC)
    return Endpoint(
        partition_key="ep-x", row_key="endpoint", id="x", fhir_base_url="https://ehr/fhir",
        vendor="cerner", environment="test", organization="Org", client_id="c",
        client_auth={"method": "private_key_jwt", "alg": "RS384"},
        launch=LaunchOptions(**launch), created_at=now, created_by="a", updated_at=now,
        updated_by="a",
    )  # fmt: skip


def test_a_service_account_organizer_lets_the_clinicians_present():
    assert presenters_for(endpoint(default_organizer=ORG), ORG) == "organization"
    assert presenters_for(endpoint(default_organizer=ORG), OTHER) == "organizer"
    assert presenters_for(endpoint(allowed_presenters="organization"), OTHER) == "organization"


@pytest.mark.parametrize(
    ("participants", "expected"),
    [
        ([{"actor": {"reference": "Practitioner/5"}}], ["5"]),
        ([{"actor": {"reference": "https://ehr/fhir/Practitioner/7/_history/2"}}], ["7"]),
        ([{"actor": None}, {"actor": {"reference": "Patient/1"}}, {}], []),
        (None, []),
    ],
)
def test_practitioners_of_an_appointment(participants, expected):
    assert practitioners({"participant": participants}) == expected


def test_the_visit_page_token_lives_for_the_visit_and_a_grace_period():
    from datetime import timedelta

    from lib.launch.visit_page import page_ttl
    from lib.visits.store import Visit

    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def visit(start=None, end=None) -> Visit:
        return Visit(partition_key="k", row_key="visit", endpoint_id="x", organizer_oid=ORG,
                     start=start, end=end, created_at=now, created_by_role="provider")  # fmt: skip

    hour = 3600
    assert page_ttl(visit(now, now + timedelta(minutes=30)), now) == 2.5 * hour
    assert page_ttl(visit(now), now) == 3 * hour  # no end: an hour from the start
    assert page_ttl(visit(), now) == 3 * hour  # no times at all: from now
    assert page_ttl(visit(now - timedelta(days=1), now - timedelta(hours=23)), now) == 15 * 60
    assert page_ttl(visit(now + timedelta(days=7), now + timedelta(days=7, hours=1)), now) == (
        24 * hour
    )
