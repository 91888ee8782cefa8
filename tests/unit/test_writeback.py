"""Write-back's pure parts: milestones, the job's shape, failure classes, codes, records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import ValidationError

from lib.admin import api
from lib.endpoints.models import Endpoint, EndpointStatus, WritebackConfig
from lib.endpoints.records import integration_records
from lib.net.http import HttpResponse
from lib.visits.events import VisitState
from lib.visits.sealed import WRITEBACK_WINDOW
from lib.visits.store import Visit
from lib.web.urls import Urls
from lib.writeback import failures
from lib.writeback.adapters import DEFAULT_RETRY_AFTER, EpicStatus, failure_of
from lib.writeback.jobs import WritebackJob, milestone_of, past_window
from lib.writeback.worker import adapter_of, codes_for

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def endpoint(vendor: str = "epic", **writeback) -> Endpoint:
    base = {
        "epic": "https://ehr.example.org/interconnect-prd/api/FHIR/R4",
        "cerner": "https://fhir-ehr.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d",
        "smart": "https://fhir.example.org/r4",
    }[vendor]
    return Endpoint(
        partition_key="ep-x",
        row_key="endpoint",
        id="contoso-test",
        fhir_base_url=base,
        vendor=vendor,
        environment="test",
        organization="Contoso",
        client_id="launch-client",
        client_auth={"method": "private_key_jwt", "alg": "RS384"},
        writeback=WritebackConfig.model_validate(writeback),
        status=EndpointStatus.ACTIVE,
        created_at=NOW,
        created_by="a",
        updated_at=NOW,
        updated_by="a",
    )


@pytest.mark.parametrize(
    ("patient", "milestone"),
    [
        ("not joined", None),
        ("joining", "connected"),
        ("waiting in lobby", "connected"),
        ("in the visit", "in_visit"),
        ("left", "left"),
    ],
)
def test_the_milestone_of_each_patient_state(patient, milestone):
    assert milestone_of(VisitState(patient=patient, provider="in the visit")) == milestone


def test_a_job_carries_no_other_field_and_reads_back():
    job = WritebackJob.new("vk" + uuid.uuid4().hex, "contoso-test", "left", 7)
    assert WritebackJob.from_text(job.to_text()) == job
    with pytest.raises(ValidationError):
        WritebackJob.model_validate({**job.model_dump(), "appointment": "Appointment/123"})
    with pytest.raises(ValidationError):
        WritebackJob.model_validate({**job.model_dump(), "rank": 0})


def response(status: int, **headers: str) -> HttpResponse:
    body = b'{"resourceType": "OperationOutcome", "issue": [{"code": "not-found", "diagnostics": "Patient Jane Doe"}]}'  # noqa: E501
    return HttpResponse(status, headers, body, "https://ehr.example.org/x")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422])
def test_refusals_are_permanent_and_say_only_status_and_issue_code(status):
    failure = failure_of(response(status), "appointment patch")
    assert failure.kind == "permanent" and failure.code == "WB-EHR-REFUSED"
    assert failure.detail == f"appointment patch: HTTP {status} (not-found)"
    assert "Jane" not in failure.detail  # the EHR's free text never reaches our rows or logs


@pytest.mark.parametrize("status", [408, 409, 412, 423, 500, 502, 504])
def test_conflicts_locks_and_server_errors_are_transient(status):
    assert failure_of(response(status), "x").kind == "transient"


def test_429_and_503_come_back_after_retry_after():
    assert failure_of(response(429, **{"Retry-After": "17"}), "x").retry_after == 17
    later = format_datetime(datetime.now(UTC).replace(microsecond=0)).replace("+0000", "GMT")
    dated = failure_of(response(503, **{"Retry-After": later}), "x")
    assert dated.kind == "later" and dated.retry_after is not None and dated.retry_after <= 1
    assert failure_of(response(503), "x").retry_after == DEFAULT_RETRY_AFTER
    assert failure_of(response(429, **{"Retry-After": "99999"}), "x").retry_after == 900


def test_adapters_and_codes_by_vendor_and_per_endpoint():
    assert adapter_of(endpoint("epic")) == "epic"
    assert adapter_of(endpoint("cerner")) == adapter_of(endpoint("smart")) == "fhir"
    assert adapter_of(endpoint("epic", adapter="fhir")) == "fhir"
    assert codes_for(endpoint("cerner"))["left"] == "fulfilled"
    custom = endpoint("epic", statuses={"connected": "PatientArrived", "in_visit": None})
    assert codes_for(custom) == {
        "connected": "PatientArrived",
        "in_visit": None,
        "left": "Disconnected",
    }


def test_epic_status_goes_to_the_fhir_servers_own_host():
    url = EpicStatus.url(endpoint("epic"))
    assert url == (
        "https://ehr.example.org/interconnect-prd"
        "/api/epic/2018/Telehealth/ContextLinking/SetExternalConnectionStatus"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"statuses": {"arrived": "x"}},  # not a milestone
        {"statuses": {"left": "bad\ncode"}},
        {"auth": {"method": "service_account", "username": "u", "secret_setting": "PATH"}},
        {"auth": {"method": "backend_services", "client_id": "c", "scopes": ["user/*.read"]}},
        {"enabled": "yes"},
        {"epic": {"path": "https://elsewhere.example.org/steal"}},
    ],
)
def test_writeback_settings_refuse_what_they_cannot_use(bad):
    with pytest.raises(ValidationError):
        WritebackConfig.model_validate(bad)


def test_integration_records_show_the_backend_app():
    auth = {"method": "backend_services", "client_id": "backend-1", "alg": "ES384"}
    records = integration_records(
        endpoint("cerner", enabled=True, auth=auth), Urls("https://evc.example.org")
    )
    assert records["backend_client_id"] == "backend-1"
    assert records["backend_scopes"] == "system/Appointment.read system/Appointment.write"
    assert records["backend_jwks_url"].endswith("/api/.well-known/jwks.json")
    assert records["backend_signing_algorithm"] == "ES384"
    assert "backend_client_id" not in integration_records(endpoint(), Urls("https://e.org"))


def test_the_route_table_and_the_failures_agree_on_a_failure_id():
    assert api.FAILURE_ID == failures.FAILURE_ID


def test_a_visit_past_its_window_is_not_written_back():
    """Its appointment id is no longer kept: a write could only be dead-lettered."""
    now = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    end = now - WRITEBACK_WINDOW - timedelta(minutes=1)

    def visit(end, created_at):
        return Visit(partition_key="vk" + "0" * 30, row_key="visit", endpoint_id="epic-test",
                     organizer_oid="oid", end=end, created_at=created_at,
                     created_by_role="provider")  # fmt: skip

    assert past_window(visit(end, end - timedelta(days=3)), now)
    assert not past_window(visit(end + timedelta(minutes=2), end - timedelta(days=3)), now)
    # opened after its slot (a late launch): the window runs from the opening, as the seal does
    assert not past_window(visit(end, end + timedelta(minutes=30)), now)
    assert not past_window(visit(None, now - timedelta(hours=1)), now)
