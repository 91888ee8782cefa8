"""The endpoint lifecycle, arrow by arrow, as lib/endpoints/lifecycle.DIAGRAM (and the README)
draws it: each case is one arrow, the facts before and after it, and the status at each end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lib.endpoints.lifecycle import DIAGRAM, is_active_test_for, status_for
from lib.endpoints.models import Approval, Endpoint, EndpointStatus, Validation

NOW = datetime(2026, 12, 1, tzinfo=UTC)
S = EndpointStatus


def endpoint(vendor="cerner", environment="test", org="Contoso", **facts) -> Endpoint:
    auth = {"method": "private_key_jwt", "alg": "RS384"}
    return Endpoint(
        partition_key="ep-x", row_key="endpoint", id="x", fhir_base_url="https://ehr/fhir",
        vendor=vendor, environment=environment, organization=org, client_id="c",
        client_auth=auth, created_at=NOW, created_by="a", updated_at=NOW, updated_by="a",
        **facts,
    )  # fmt: skip


VALID = Validation(checked_at=NOW, ok=True)
PROBLEMS = Validation(checked_at=NOW, ok=False, problems=[{"code": "DISC-NO-S256", "message": ""}])
APPROVED = Approval(approved_by="b", approved_at=NOW)
REJECTED = Approval(rejected_by="b", rejected_at=NOW, reason="wrong server")

# (arrow as the diagram names it, facts before, facts after, status before, status after)
ARROWS = [
    ("validate", {}, {"validation": PROBLEMS}, S.INVALID, S.INVALID),
    ("fix (Cerner)", {"validation": PROBLEMS}, {"validation": VALID}, S.INVALID, S.ACTIVE),
    ("fix (Epic)", {"vendor": "epic", "validation": PROBLEMS},
     {"vendor": "epic", "validation": VALID}, S.INVALID, S.AWAITING_APPROVAL),
    ("approver signs in to the EHR", {"vendor": "epic", "validation": VALID},
     {"vendor": "epic", "validation": VALID, "approval": APPROVED},
     S.AWAITING_APPROVAL, S.ACTIVE),
    ("approver rejects", {"vendor": "epic", "validation": VALID},
     {"vendor": "epic", "validation": VALID, "approval": REJECTED},
     S.AWAITING_APPROVAL, S.REJECTED),
    ("a new base URL, client or auth",
     {"vendor": "epic", "validation": VALID, "approval": REJECTED},
     {"vendor": "epic", "validation": VALID, "approval": Approval()},
     S.REJECTED, S.AWAITING_APPROVAL),
    ("disable", {"validation": VALID}, {"validation": VALID, "enabled": False},
     S.ACTIVE, S.DISABLED),
    ("enable", {"validation": VALID, "enabled": False}, {"validation": VALID},
     S.DISABLED, S.ACTIVE),
    ("disable (Epic, awaiting approval)", {"vendor": "epic", "validation": VALID},
     {"vendor": "epic", "validation": VALID, "enabled": False}, S.AWAITING_APPROVAL, S.DISABLED),
    ("enable (an invalid one)", {"validation": PROBLEMS, "enabled": False},
     {"validation": PROBLEMS}, S.DISABLED, S.INVALID),
]  # fmt: skip


@pytest.mark.parametrize(("arrow", "before", "after", "start", "end"), ARROWS, ids=lambda a: a)
def test_each_arrow(arrow, before, after, start, end):
    assert status_for(endpoint(**before), has_active_test=False) == start
    assert status_for(endpoint(**after), has_active_test=False) == end


def test_every_arrow_is_in_the_diagram():
    for arrow, *_ in ARROWS:
        name = arrow.split(" (")[0]
        assert name in DIAGRAM, f"{name!r} is not drawn"


@pytest.mark.parametrize("vendor", ["cerner", "epic"])
def test_production_waits_for_an_active_test_endpoint(vendor):
    facts = {"validation": VALID, "approval": APPROVED}
    production = endpoint(vendor=vendor, environment="production", **facts)
    assert status_for(production, has_active_test=False) == S.AWAITING_TEST
    assert status_for(production, has_active_test=True) == S.ACTIVE
    # an approval is still needed first, for the vendors that need one
    unapproved = endpoint(vendor=vendor, environment="production", validation=VALID)
    expected = S.AWAITING_APPROVAL if vendor == "epic" else S.ACTIVE
    assert status_for(unapproved, has_active_test=True) == expected


def test_what_counts_as_the_active_test_endpoint():
    production = endpoint(environment="production", validation=VALID)
    test = endpoint(org="contoso", validation=VALID, status=S.ACTIVE)
    assert is_active_test_for(test, production)  # organization compared without case
    assert not is_active_test_for(test.model_copy(update={"organization": "Fabrikam"}), production)
    assert not is_active_test_for(test.model_copy(update={"status": S.DISABLED}), production)
    assert not is_active_test_for(test.model_copy(update={"validation": PROBLEMS}), production)
    other_production = test.model_copy(update={"environment": "production"})
    assert not is_active_test_for(other_production, production)
