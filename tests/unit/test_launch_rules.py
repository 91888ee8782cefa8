"""Small launch rules that need no servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lib.endpoints.models import Endpoint, LaunchOptions
from lib.launch.complete import practitioners
from lib.visits.opening import presenters_for
from lib.web.errors import AppError

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


class _Ehr:
    """Answers the two FHIR calls _subject may make, and counts them."""

    def __init__(self, encounter=None, found=None) -> None:
        self.encounter, self.found, self.calls = encounter or {}, found or {}, []

    def read(self, token, kind, fhir_id):
        self.calls.append(("read", kind, fhir_id))
        return self.encounter

    def search_one(self, token, kind, params):
        self.calls.append(("search", kind, params["identifier"]))
        return self.found


def test_the_subject_of_a_launch():
    from lib.launch.complete import _subject
    from lib.smart.context import LaunchContext

    appt = LaunchContext(appointment_id="A1", encounter_id="E1")
    ehr = _Ehr()
    assert _subject(ehr, None, appt) == (("Appointment", "A1"), None) and ehr.calls == []
    booked = {"resourceType": "Encounter", "appointment": [{"reference": "Appointment/A9"}]}
    ehr = _Ehr(encounter=booked)
    assert _subject(ehr, None, LaunchContext(encounter_id="E1"))[0] == ("Appointment", "A9")
    ehr = _Ehr(encounter={"resourceType": "Encounter"})
    assert _subject(ehr, None, LaunchContext(encounter_id="E1"))[0] == ("Encounter", "E1")
    ehr = _Ehr(found={"resourceType": "Appointment", "id": "A5"})
    by_identifier = LaunchContext(appointment_identifier="urn:x|5")
    assert _subject(ehr, None, by_identifier)[0] == ("Appointment", "A5")
    assert ehr.calls == [("search", "Appointment", "urn:x|5")]
    with pytest.raises(AppError) as err:
        _subject(_Ehr(found={"id": "../x"}), None, by_identifier)
    assert err.value.code == "LAUNCH-NO-APPOINTMENT"


def test_an_encounters_times_and_clinicians():
    from lib.launch.complete import _times

    encounter = {
        "resourceType": "Encounter",
        "period": {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:30:00+00:00"},
        "participant": [{"individual": {"reference": "Practitioner/D1"}}, {"individual": 5}],
    }
    start, end = _times(encounter)
    assert (start.hour, end.minute) == (9, 30)
    assert practitioners(encounter) == ["D1"]
    assert _times({"resourceType": "Appointment", "start": "not a time"}) == (None, None)
