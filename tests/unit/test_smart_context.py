"""Launch context per vendor."""

from __future__ import annotations

import pytest

from lib.ehr.profiles import CERNER, EPIC
from lib.smart.context import context_references, extract_context
from lib.smart.tokens import parse_token_response
from lib.web.errors import AppError


def token(**fields):
    return parse_token_response({"access_token": "x", **fields})


def test_epic_provider_launch_with_field_map_and_fhir_user():
    response = token(
        patient="eP1",
        encounter="eE1",
        appointment="eA1",
        loginDepartment="1010100",
        epicUserID="EMP123",
        csn="720000001",
        need_patient_banner="true",
    )
    field_map = {"ehr_user_id": "epicUserID", "department": "loginDepartment", "csn": "csn"}
    claims = {"fhirUser": "https://ehr.example.org/api/FHIR/R4/Practitioner/ePR1"}
    ctx = extract_context(response, id_claims=claims, field_map=field_map)
    assert (ctx.appointment_id, ctx.encounter_id, ctx.patient_id) == ("eA1", "eE1", "eP1")
    assert (ctx.user_id, ctx.user_type) == ("ePR1", "Practitioner")  # signed claim wins
    assert ctx.department == "1010100"
    assert ctx.need_patient_banner is True
    assert ctx.extras == {"csn": "720000001"}


def test_epic_user_from_field_map_when_no_fhir_user():
    response = token(appointment="eA1", epicUserID="EMP123")
    ctx = extract_context(response, field_map={"ehr_user_id": "epicUserID"})
    assert (ctx.user_id, ctx.user_type) == ("EMP123", None)


def test_epic_default_department_without_a_field_map():
    ctx = extract_context(token(loginDepartment="2020"), field_map=EPIC.field_map({}))
    assert ctx.department == "2020"
    assert extract_context(token(loginDepartment="2020")).department is None  # generic SMART


def test_cerner_provider_launch():
    response = token(
        patient="12724066",
        encounter="97953477",
        user="12742069",
        username="portal",
        tenant="ec2458f2",
        need_patient_banner=False,
    )
    ctx = extract_context(response, field_map=CERNER.context_fields)
    assert (ctx.patient_id, ctx.encounter_id, ctx.user_id) == ("12724066", "97953477", "12742069")
    assert ctx.tenant == "ec2458f2"
    assert ctx.extras == {"username": "portal"}
    assert ctx.appointment_id is None


def test_generic_smart_fhir_context():
    response = token(
        fhirContext=[
            {"reference": "Appointment/123"},
            {"reference": "https://fhir.example.org/r4/Encounter/456/_history/2"},
            {"reference": "Appointment/999"},  # the first of a type wins
            {"type": "DocumentReference", "identifier": {"value": "x"}},
        ]
    )
    ctx = extract_context(response)
    assert (ctx.appointment_id, ctx.encounter_id) == ("123", "456")


def test_typed_fields_win_over_fhir_context_and_accept_references():
    response = token(encounter="Encounter/E9", fhirContext=[{"reference": "Encounter/E1"}])
    assert extract_context(response).encounter_id == "E9"
    wrong_type = token(encounter="Patient/P1")
    assert extract_context(wrong_type).encounter_id is None


def test_patient_launch_falls_back_to_the_patient_user():
    ctx = extract_context(token(appointment="A1"), id_claims={"fhirUser": "Patient/P7"})
    assert (ctx.patient_id, ctx.user_type, ctx.user_id) == ("P7", "Patient", "P7")
    proxy = extract_context(token(patient="P8"), id_claims={"fhirUser": "RelatedPerson/R1"})
    assert (proxy.patient_id, proxy.user_type) == ("P8", "RelatedPerson")


def test_older_servers_profile_claim():
    ctx = extract_context(token(), id_claims={"profile": "Practitioner/abc"})
    assert ctx.user_id == "abc"


def test_context_references_ignore_bad_items():
    assert context_references([{"reference": "nope"}, {"reference": 5}, {}]) == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"appointment": "A1%2F..%2FPatient%2F1"},
        {"appointment": "a" * 65},
        {"encounter": "E 1"},
        {"patient": "P1?_format=xml"},
        {"appointment": "A1", "user": "u\nx"},
    ],
)
def test_ids_outside_fhir_id_syntax_are_refused_without_echo(fields):
    with pytest.raises(AppError) as err:
        extract_context(token(**fields), field_map=CERNER.context_fields)
    assert err.value.code == "LAUNCH-BAD-CONTEXT"
    assert all(v not in (err.value.detail or "") for v in fields.values())


def test_fhir_context_2_1_roles_identifiers_and_canonicals():
    response = token(
        fhirContext=[
            {"reference": "Encounter/E-other", "role": "https://example.org/role/source"},
            {"type": "Appointment", "identifier": {"system": "urn:oid:1.2.3", "value": "A-77"}},
            {"canonical": "http://example.org/Questionnaire/intake|1.0", "type": "Questionnaire"},
            {"reference": "Patient/P1", "type": "Encounter"},  # type and reference disagree
            {"reference": "Encounter/E1", "role": "launch"},
        ]
    )
    ctx = extract_context(response)
    assert ctx.encounter_id == "E1"  # the launch's own encounter, not the other role's
    assert ctx.patient_id is None
    assert ctx.appointment_identifier == "urn:oid:1.2.3|A-77"
    assert ctx.appointment_id is None
