"""Reading scheduling messages: SIU fields (MLLP framing, local times on a DST change day,
phones by preference) and FHIR Appointments (contained Patient, extension), phones to E.164."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from lib.sms import schedule
from lib.sms.intake import normalise_phone
from lib.web.errors import AppError

CHICAGO = ZoneInfo("America/Chicago")


def siu(
    event: str = "S12",
    start: str = "20261201110000",
    pid13: str = "^PRN^PH^^1^555^5550101",
    extra: str = "",
) -> bytes:
    return (
        "\r".join(
            [
                f"MSH|^~\\&|EPIC|CLINIC|EVC|EVC|20261201103000||SIU^{event}|MSG1|P|2.5.1",
                f"SCH||APPT-7|||||||45|min|^^45^{start}",
                f"PID|1||E4001^^^MRN||Rivera^Jordan||||||||{pid13}",
                f"AIS|1||VIRTUAL|{start}||45|min",
                "AIP|1||P123^Reyes^Ana",
                extra,
            ]
        )
        + "\r"
    ).encode()


def test_an_siu_is_read_in_the_clinics_zone_with_mllp_framing():
    _, message = schedule.read_hl7(b"\x0b" + siu() + b"\x1c\r", CHICAGO)
    assert (message.kind, message.appointment_id, message.clinician) == ("booked", "APPT-7", "P123")
    assert message.start == dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.UTC)  # 11:00 CST
    assert message.end - message.start == dt.timedelta(minutes=45)
    assert message.control_id == "MSG1"


@pytest.mark.parametrize("length", ["²", "٤٥", "9" * 40, "-5", "45.5", ""])
def test_a_length_that_is_no_plain_number_leaves_the_end_open(length):
    """'²' and '٤٥' pass str.isdigit(), and int() then refused one and read the other: the
    intake answered 500 or invented an end. An unreadable length is no length."""
    message = siu().replace(b"|45|min", f"|{length}|min".encode())
    _, read = schedule.read_hl7(message, CHICAGO)
    assert read.start is not None and read.end is None


def test_a_length_in_hours():
    _, read = schedule.read_hl7(siu().replace(b"|45|min", b"|2|h"), CHICAGO)
    assert read.end - read.start == dt.timedelta(hours=2)


@pytest.mark.parametrize(
    ("local", "utc_hour"),
    [
        ("20261101013000", 6),  # 01:30 CDT, the first of the two 01:30s that night (fold 0)
        ("20261101030000", 9),  # 03:00 CST, after the clocks went back
        ("20260308030000", 8),  # 03:00 CDT on the spring-forward day
    ],
)
def test_local_times_on_dst_change_days(local, utc_hour):
    _, message = schedule.read_hl7(siu(start=local), CHICAGO)
    assert message.start.hour == utc_hour


def test_an_explicit_offset_wins_over_the_zone():
    _, message = schedule.read_hl7(siu(start="20261201110000-0500"), CHICAGO)
    assert message.start == dt.datetime(2026, 12, 1, 16, 0, tzinfo=dt.UTC)


def test_every_event_maps_to_what_it_means():
    kinds = {e: schedule.read_hl7(siu(e), CHICAGO)[1].kind for e in schedule.HL7_EVENTS}
    assert kinds == {
        "S12": "booked",
        "S13": "rescheduled",
        "S14": "modified",
        "S15": "cancelled",
        "S17": "cancelled",
    }
    with pytest.raises(AppError) as caught:
        schedule.read_hl7(siu("S26"), CHICAGO)
    assert caught.value.code == "SCHED-BAD-MESSAGE"


def test_a_cell_phone_comes_first_and_emails_are_skipped():
    pid13 = "^PRN^PH^^1^555^5550102~^NET^Internet^jr@example.org~^PRN^CP^^1^555^5550101"
    _, message = schedule.read_hl7(siu(pid13=pid13), CHICAGO)
    assert message.phones == ("15555550101", "15555550102")
    assert normalise_phone(message.phones, "US") == "+15555550101"


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(555) 555-0101", "US", "+15555550101"),
        ("+34 612 34 56 78", "US", "+34612345678"),
        ("612 34 56 78", "ES", "+34612345678"),
        ("not a phone", "US", None),
        ("12", "US", None),
    ],
)
def test_phones_become_e164_with_the_endpoints_region(raw, region, e164):
    assert normalise_phone((raw,), region) == e164


def test_a_fhir_appointment_with_a_contained_patient_or_the_extension():
    body = {
        "resourceType": "Appointment",
        "id": "A1",
        "status": "booked",
        "start": "2026-12-01T11:00:00-06:00",
        "minutesDuration": 20,
        "meta": {"lastUpdated": "2026-12-01T10:00:00Z"},
        "contained": [
            {
                "resourceType": "Patient",
                "telecom": [
                    {"system": "phone", "value": "555-555-0102", "use": "home"},
                    {"system": "phone", "value": "555-555-0101", "use": "mobile"},
                ],
            }
        ],
        "participant": [{"actor": {"reference": "Practitioner/P9"}}],
    }
    message = schedule.read_fhir(json.dumps(body).encode(), CHICAGO)
    assert message.phones[0] == "555-555-0101" and message.clinician == "P9"
    assert message.end - message.start == dt.timedelta(minutes=20)
    del body["contained"]
    body["extension"] = [{"url": schedule.PHONE_EXTENSION, "valueString": "+15555550103"}]
    body["status"] = "cancelled"
    message = schedule.read_fhir(json.dumps(body).encode(), CHICAGO)
    assert message.phones == ("+15555550103",) and message.cancelled
