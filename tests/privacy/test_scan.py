"""The scanner itself (no stack): each needle format is found however it is written, where it
is, and nothing is found in what we do store (keyed hashes, sealed values, times, ids of ours)."""

from __future__ import annotations

import base64
import secrets

import pytest

from dev.sandbox.ehr import data
from lib.privacy import PrivacyKeys
from lib.sealing import Sealer
from tests.privacy import scan

RIVERA = next(p for p in data.PATIENTS if p.key == "rivera")  # +15555550101, 1984-03-12, E4001


@pytest.fixture(scope="module")
def scanner() -> scan.Scanner:
    return scan.Scanner()


def kinds(scanner: scan.Scanner, text: str) -> set[str]:
    return {f.kind for f in scanner.text(text, "test")}


@pytest.mark.parametrize(
    "written",
    [
        "+15555550101", "15555550101", "5555550101", "+1 555 555 0101", "+1-555-555-0101",
        "(555) 555-0101", "555-555-0101", "555.555.0101", "555 555 0101", "1 (555) 555 0101",
        "5 5 5 5 5 5 0 1 0 1", "%2B15555550101", "tel:+1.555.555.0101", "^PRN^CP^^1^555^5550101",
    ],
)  # fmt: skip
def test_a_phone_number_in_any_format(scanner, written):
    assert scan.PHONE in kinds(scanner, f"texted {written} today")


@pytest.mark.parametrize(
    "written",
    [
        "1984-03-12", "19840312", "198403120000", "1984/03/12", "1984-3-12", "03/12/1984",
        "3/12/1984", "12.03.1984", "12/03/1984", "March 12, 1984", "Mar 12 1984",
        "12 March 1984", "12-Mar-1984", "1984-03-12T00:00:00Z", "birthDate: 1984.03.12",
    ],
)  # fmt: skip
def test_a_birth_date_in_any_format(scanner, written):
    assert scan.BIRTH_DATE in kinds(scanner, f"born {written}.")


@pytest.mark.parametrize(
    "written",
    ["Jordan Rivera", "RIVERA, JORDAN", "rivera^jordan", "jordan.rivera", "Rivera", "JORDAN",
     '{"family": "Rivera"}', "Rivera^Jordan||19840312"],
)  # fmt: skip
def test_a_patient_name_in_any_case_and_order(scanner, written):
    assert scan.PATIENT_NAME in kinds(scanner, written)


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("PID|1||E4001^^^MRN", scan.MRN),
        ("Patient/erXuFYUfucBZaryVksYEcMg3", scan.FHIR_ID),
        ("Appointment/4817552", scan.FHIR_ID),
        ('"appointment": "eWLhfjXHp4RUczv1sbGLvqA3"', scan.FHIR_ID),
        ("reason=Follow-up: blood pressure", scan.REASON),
        ("Dr. Ada Reyes", scan.CLINICIAN_NAME),
    ],
)
def test_identifiers_and_clinicians(scanner, written, kind):
    assert kind in kinds(scanner, written)


@pytest.mark.parametrize(
    "innocent",
    [
        "Canada",
        "Riverside Family Medicine",
        "E40012",
        "48175521",
        "155555501012",
        "2026-12-01T12:48:17.552Z",
        "1984",
        "visit 8f3a",
        "Jordanian",
        "readahead",
        "Appointment/4817552x",
    ],
)
def test_what_only_looks_like_a_needle_is_not_one(scanner, innocent):
    assert kinds(scanner, innocent) == set()


def test_hashes_sealed_values_and_random_tokens_hide_no_names(scanner):
    """Hex and base64 contain "ada", "emi" and "omar" by chance: not findings."""
    keys = PrivacyKeys("scan-test-hash-key-0123456789abcdef0123")
    sealer = Sealer.from_setting(base64.b64encode(b"k" * 32).decode(), hash_key="h" * 32)
    texts = [keys.keyed_hash("patient", p.ids["epic"], purpose=f"p{i}") for p in data.PATIENTS
             for i in range(3)]  # fmt: skip
    texts += [sealer.seal(p.phone, visit_key="v" * 32, purpose="phone") for p in data.PATIENTS]
    texts += [secrets.token_urlsafe(48) for _ in range(2000)] + [secrets.token_hex(32)] * 200
    texts += ["ada" + secrets.token_hex(20), secrets.token_hex(20) + "-Omar-" + "7" * 20]
    found = [f for t in texts for f in scanner.text(t, "t")]
    assert found == [], scan.report(found)


def test_a_finding_says_where_and_what(scanner):
    [finding] = scanner.text("to +1 (555) 555-0101 now", "log host.log:7")
    assert finding.where == "log host.log:7" and finding.kind == scan.PHONE
    assert finding.label == "rivera: phone" and "(555) 555-0101" in finding.excerpt


def test_allowed_places_are_not_findings():
    allowed = [scan.Allowed(scan.CLINICIAN_NAME, "table *Mappings *.display_name", "why")]
    scanner = scan.Scanner(allowed=allowed)
    assert scanner.text("Ada Reyes", "table evcMappings (a, b).display_name") == []
    assert scanner.text("Ada Reyes", "table evcVisits (a, b).organizer") != []
    assert scanner.text("Jordan Rivera", "table evcMappings (a, b).display_name") != []


def test_queue_bodies_are_read_base64_decoded(scanner):
    content = base64.b64encode(b'{"mrn": "E4001"}').decode()
    [finding] = scanner.message("visit-events-poison", "m1", content)
    assert finding.kind == scan.MRN and finding.where == "queue visit-events-poison #m1"


def test_every_patient_of_the_chart_is_looked_for(scanner):
    labels = {n.label for n in scanner.needles}
    for p in data.PATIENTS:
        assert {f"{p.key}: phone", f"{p.key}: mrn", f"{p.key}: birth date"} <= labels
        assert f"{p.key}: family name" in labels and f"patient {p.key}: epic id" in labels
    for s in data.SLOTS:
        assert f"appointment {s.key}: cerner id" in labels
    assert RIVERA.phone == "+15555550101"  # the formats above are written for her
