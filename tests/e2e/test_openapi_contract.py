"""Schemathesis against the running config API with every check: the OpenAPI file is the contract.

In-process, through Schemathesis's own engine (what `st run --checks all` drives): schema-valid
requests must be accepted (positive data acceptance), invalid ones refused, every answer must have
a declared status, content type, headers and body, and a missing If-Match or token must be refused.
Each operation is called with a token of the role it needs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as ev

from lib.admin.api import ROUTES

OPERATIONS = {f"{r.method} /{r.path}" for r in ROUTES}
ROLES = {  # (method, path) -> the app.token role: admin, approver or reader
    (r.method, f"/{r.path}"): r.role.value.removeprefix("Connector.").lower()
    for r in ROUTES
    if r.role
}

# Two of the API's answers are about state, not data, and Schemathesis's defaults do not know them:
# - a missing If-Match is 428 (RFC 6585), the one answer accepted for it (the default set, 400,
#   401, 403, 406, 415 or 422, lacks 428 and would take any of the others);
# - a schema-valid If-Match that is not the endpoint's current ETag is 412 (RFC 9110), like the
#   404 and 409 that positive data may already meet: generated ETags are never current ones.
#   (The document's links carry the real ETag, so the stateful phase also changes endpoints.)
CHECKS = {"missing_required_header": {"expected-statuses": ["428"]}}
IF_MATCH_OPERATIONS = {
    "include-operation-id": [
        "patch_config_endpoints_id",
        "delete_config_endpoints_id",
        "patch_config_sms_endpoints_id",
        "put_config_reports_thresholds",
    ],
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
        }
    },
}


# SMS settings that are PUT take If-Match once they are stored (none before: the first write
# creates them), so a case without one meets 428 once an earlier case stored the setting.
CONDITIONAL_OPERATIONS = {
    "include-operation-id": ["put_config_sms_consent", "put_config_sms_numbers_number"],
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "428", "5xx"]
        }
    },
}
# A certificate's usability (an X.509 certificate, its key type and size, not expired) is more
# than JSON Schema can say: a schema-valid text is mostly no certificate (422 SMS-CERT-INVALID).
CERTIFICATE_OPERATIONS = {
    "include-operation-id": ["put_config_sms_certificates_environment"],
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422", "428", "5xx"]
        }
    },
}

# A report's range is more than JSON Schema can say too: `from` not after `to`, at most 400 days
# between them, a preset or dates (not both); and a continuation token is opaque, so a
# schema-valid one is mostly not one the API gave (400 RPT-BAD-RANGE, RPT-BAD-CONTINUATION).
REPORT_OPERATIONS = {
    "include-operation-id": ["get_reports_visits", "get_reports_summary"],
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]
        }
    },
}


def _config(ca_file: str) -> SchemathesisConfig:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 7,
            "tls-verify": ca_file,  # the app's https certificate is from the sandbox CA
            "request-timeout": 30,
            "generation": {"max-examples": 12, "mode": "all"},  # positive and negative
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
            "checks": CHECKS,
            "operations": [
                IF_MATCH_OPERATIONS,
                CONDITIONAL_OPERATIONS,
                CERTIFICATE_OPERATIONS,
                REPORT_OPERATIONS,
            ],
        }
    )
    config.projects.override.checks.update(included_check_names=["all"])  # `--checks all`
    return config


@dataclass
class Run:
    cases: Counter = field(default_factory=Counter)  # per operation
    answers: Counter = field(default_factory=Counter)  # per (operation, status)
    checks: Counter = field(default_factory=Counter)  # per check name
    problems: list[str] = field(default_factory=list)

    def record(self, recorder) -> None:
        for case_id, node in recorder.cases.items():
            label = node.value.operation.label
            self.cases[label] += 1
            interaction = recorder.interactions.get(case_id)
            if interaction is not None and interaction.response is not None:
                self.answers[label, interaction.response.status_code] += 1
        for nodes in recorder.checks.values():
            for check in nodes:
                self.checks[check.name] += 1
                if check.status == Status.FAILURE and check.failure_info:
                    info = check.failure_info
                    self.problems.append(
                        f"{recorder.label}: {info.failure.title}\n{info.failure.message}\n"
                        f"{info.code_sample}"
                    )

    def statuses(self, operation: str) -> set[int]:
        return {status for (label, status) in self.answers if label == operation}


def _run(app) -> Run:
    tokens = {role: app.token(role) for role in ("admin", "approver", "reader")}
    schema = schemathesis.openapi.from_url(
        app.api("openapi.json"), config=_config(app.verify), verify=app.verify
    )

    @schema.auth(refresh_interval=None)
    class RoleToken:
        """The token of the role the operation needs (approval and reject: the approver)."""

        def get(self, case, ctx):
            return tokens[ROLES[case.operation.method.upper(), case.operation.path]]

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, ev.ScenarioFinished):
            run.record(event.recorder)
        elif isinstance(event, ev.NonFatalError):
            run.problems.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, ev.FatalError):
            run.problems.append(f"fatal: {event.exception!r}")
        elif isinstance(event, ev.EngineFinished) and event.failures:
            run.problems.append(f"{len(event.failures)} failures: {event.failures[:3]!r}")
    return run


# CPU-bound (schemathesis generates and checks every case): on a loaded 2-CPU machine it needs
# more than the suite's 120 s hang guard; the guard stays, wider.
@pytest.mark.timeout(360)
def test_config_api_conforms_to_its_openapi(app):
    run = _run(app)
    assert not run.problems, "\n".join(run.problems[:40])
    # It must really have run: every operation, with generated cases, under every check...
    assert set(run.cases) == OPERATIONS, sorted(OPERATIONS - set(run.cases))
    assert min(run.cases.values()) >= 10 and sum(run.cases.values()) >= 300, run.cases
    for name in ("positive_data_acceptance", "negative_data_rejection", "status_code_conformance",
                 "content_type_conformance", "response_schema_conformance",
                 "response_headers_conformance", "missing_required_header", "ignored_auth",
                 "unsupported_method", "use_after_free", "not_a_server_error"):  # fmt: skip
        assert run.checks[name] > 0, (name, run.checks)
    # ...reaching past the token (every operation also answered 401 to a missing or bad one),
    # the If-Match rule, and the happy paths.
    assert all(401 in run.statuses(op) for op in OPERATIONS), run.answers
    assert {428, 412} <= run.statuses("PATCH /config/endpoints/{id}"), run.answers
    assert {428, 412} <= run.statuses("DELETE /config/endpoints/{id}"), run.answers
    for op in ("POST /config/endpoints", "GET /config/endpoints", "GET /config/endpoints/{id}",
               "GET /config/audit"):  # fmt: skip
        assert any(200 <= s < 300 for s in run.statuses(op)), (op, run.answers)
    print(f"\nschemathesis: {sum(run.cases.values())} cases, {sum(run.checks.values())} checks")
