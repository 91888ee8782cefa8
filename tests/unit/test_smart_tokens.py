"""Token response parsing (the network side is in tests/integration/test_smart_http.py)."""

from __future__ import annotations

import pytest

from lib.smart.tokens import TokenResponse, parse_token_response
from lib.web.errors import AppError

EPIC_RESPONSE = {
    "access_token": "epic-access-token-value",
    "token_type": "Bearer",
    "expires_in": "3600",
    "scope": "launch openid fhirUser user/Appointment.read user/Patient.read",
    "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.sig",
    "state": "abc",
    "patient": "eM5CWtq15N0WJeuCet5bJlQ3",
    "encounter": "eGmO0h.1.MS3LbB0mvaVEQ3",
    "appointment": "eWLhfjXHp4RUczv5IRZXzGg3",
    "location": "e4W4rmGe9QzuGm2Dy4ZA1Tw3",
    "loginDepartment": "1010100",
    "__epic.dstu2.patient": "Tbt3KuCY0B5PSrJvCu2j-PlK.aiHsu2xUjUM8bWpetXoB",
    "need_patient_banner": "false",
    "smart_style_url": "https://ehr.example.org/style.json",
}
CERNER_RESPONSE = {
    "access_token": "cerner-access-token-value",
    "token_type": "Bearer",
    "expires_in": 570,
    "scope": "launch openid fhirUser user/Patient.read",
    "patient": "12724066",
    "encounter": "97953477",
    "user": "12742069",
    "username": "portal",
    "tenant": "ec2458f2-1e24-41c8-b71b-0e701af7583d",
    "need_patient_banner": True,
    "id_token": "eyJ.x.y",
}


def test_epic_response_typed_fields_and_extras():
    token = parse_token_response(EPIC_RESPONSE, received_at=1000.0)
    assert token.expires_in == 3600
    assert token.expires_at == 4600.0
    assert token.need_patient_banner is False  # the string "false", parsed leniently
    assert token.patient == "eM5CWtq15N0WJeuCet5bJlQ3"
    assert token.extras["appointment"] == "eWLhfjXHp4RUczv5IRZXzGg3"
    assert token.extras["loginDepartment"] == "1010100"
    assert "__epic.dstu2.patient" in token.extras
    assert "access_token" not in token.extras and "patient" not in token.extras
    assert token.granted_scopes[:3] == ["launch", "openid", "fhirUser"]


def test_cerner_response():
    token = parse_token_response(CERNER_RESPONSE)
    assert (token.expires_in, token.tenant, token.need_patient_banner) == (
        570,
        "ec2458f2-1e24-41c8-b71b-0e701af7583d",
        True,
    )
    assert token.extras == {"user": "12742069", "username": "portal"}


def test_fhir_context_and_lenient_values():
    token = parse_token_response(
        {
            "access_token": "a",
            "fhirContext": [{"reference": "Appointment/1"}, "junk"],
            "expires_in": "soon",
            "need_patient_banner": "maybe",
            "patient": 123,
        }
    )
    assert token.fhir_context == [{"reference": "Appointment/1"}]
    assert token.expires_in is None and token.expires_at is None
    assert token.need_patient_banner is None
    assert token.patient == "123"


def test_tokens_never_appear_in_repr():
    text = repr(parse_token_response({**EPIC_RESPONSE, "refresh_token": "refresh-secret"}))
    for secret in ("epic-access-token-value", "eyJhbGciOiJSUzI1NiJ9", "refresh-secret"):
        assert secret not in text


@pytest.mark.parametrize("doc", [{}, {"access_token": ""}, {"access_token": 5}, ["x"], None])
def test_no_access_token_is_an_exchange_failure(doc):
    with pytest.raises(AppError) as caught:
        parse_token_response(doc)
    assert caught.value.code == "TOKEN-EXCHANGE-FAILED"
    assert "access_token" in caught.value.detail or "object" in caught.value.detail


def test_model_round_trips_through_json():
    token = parse_token_response(EPIC_RESPONSE)
    again = TokenResponse.model_validate(token.model_dump(by_alias=True))
    assert again.extras == token.extras and again.access_token == token.access_token


@pytest.mark.parametrize(
    ("sent", "read"),
    [("3600", 3600), (" 60 ", 60), (570.0, 570), ("²", None), ("٣٦٠٠", None), ("9" * 40, None),
     (float("inf"), None), (float("nan"), None), (True, None)],
)  # fmt: skip
def test_expires_in_is_a_plain_number_or_nothing(sent, read):
    """Python's JSON reader takes Infinity and NaN: int(inf) raised OverflowError, which pydantic
    does not turn into a validation error (a 500); '²' passed isdigit() and int() refused it."""
    assert parse_token_response({"access_token": "a", "expires_in": sent}).expires_in == read
