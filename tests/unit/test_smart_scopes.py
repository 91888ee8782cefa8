"""Requested scopes and the granted-scope comparison."""

from __future__ import annotations

import pytest

from lib.smart import scopes

PROVIDER_V1 = (
    "launch openid fhirUser user/Appointment.read user/Patient.read "
    "user/Practitioner.read user/Encounter.read"
)


def test_provider_launch_scopes_v1_and_v2():
    assert scopes.join(scopes.provider_launch_scopes(v2=False)) == PROVIDER_V1
    assert scopes.provider_launch_scopes(v2=True) == [
        "launch",
        "openid",
        "fhirUser",
        "user/Appointment.rs",
        "user/Patient.rs",
        "user/Practitioner.rs",
        "user/Encounter.rs",
    ]


def test_patient_launch_scopes_v1_and_v2():
    assert scopes.join(scopes.patient_launch_scopes(v2=False)) == (
        "launch openid fhirUser patient/Appointment.read patient/Patient.read"
    )
    assert scopes.patient_launch_scopes(v2=True)[-2:] == [
        "patient/Appointment.rs",
        "patient/Patient.rs",
    ]


def test_approval_sign_in_asks_only_for_identity():
    assert scopes.approval_scopes() == ["openid", "fhirUser"]


def test_join_and_parse_drop_duplicates_and_keep_order():
    assert scopes.join(["a", "b", "a", ""]) == "a b"
    assert scopes.parse("  a b  a ") == ["a", "b"]
    assert scopes.parse(None) == []


def test_everything_granted_means_nothing_missing():
    requested = scopes.provider_launch_scopes(v2=False)
    assert scopes.missing(requested, PROVIDER_V1, has_id_token=True) == []


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("user/Patient.read", "user/Patient.rs"),
        ("user/Patient.rs", "user/Patient.read"),
        ("user/Patient.rs", "user/Patient.cruds"),
        ("user/Patient.rs", "user/Patient.r user/Patient.s"),
        ("user/Patient.read", "user/*.read"),
        ("user/Patient.rs", "user/*.*"),
        ("user/Appointment.write", "user/Appointment.cud"),
    ],
)
def test_v1_and_v2_forms_are_equivalent(requested, granted):
    assert scopes.missing([requested], granted, has_id_token=True) == []


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("user/Patient.rs", "user/Patient.r"),  # search not granted
        ("user/Patient.read", "patient/Patient.read"),  # another context
        ("user/Patient.read", "user/Practitioner.read"),
        ("user/Patient.rs", "user/Patient.rs?category=x"),  # narrowed grant covers nothing
        ("offline_access", "online_access"),
    ],
)
def test_less_than_requested_is_reported(requested, granted):
    assert scopes.missing([requested], granted, has_id_token=True) == [requested]


def test_launch_scopes_are_never_reported():
    assert scopes.missing(["launch", "launch/patient"], "", has_id_token=True) == []


def test_identity_scopes_reported_only_without_id_token():
    requested = ["openid", "fhirUser"]
    assert scopes.missing(requested, "", has_id_token=True) == []
    assert scopes.missing(requested, "", has_id_token=False) == ["openid", "fhirUser"]
    assert scopes.missing(requested, "openid fhirUser", has_id_token=False) == []


def test_granted_may_be_a_list_or_none():
    assert scopes.missing(["user/Patient.rs"], ["user/Patient.read"], has_id_token=True) == []
    assert scopes.missing(["user/Patient.rs"], None, has_id_token=True) == ["user/Patient.rs"]
