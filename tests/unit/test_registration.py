"""What function_app registers with the host: names, triggers, routes, methods, auth, queues."""

from __future__ import annotations

import importlib
import sys

import pytest

from dev.stack import settings_env


# name -> what the host must see. Update this table with every function added.
def _http(route: str, *methods: str) -> dict:
    return {"trigger": "httpTrigger", "route": route, "methods": list(methods), "auth": "ANONYMOUS"}


EXPECTED = {
    "health": _http("health", "GET"),
    "openapi": _http("openapi.json", "GET"),
    "jwks": _http(".well-known/jwks.json", "GET"),
    "launch_callback": _http("launch/callback", "GET"),
    "launch": _http("launch/{endpoint}/{persona}", "GET"),
    "launch_confirm": _http("launch/confirm", "POST"),
    "signin_window": _http("launch/window", "GET"),
    "signin_window_handoff": _http("launch/window", "POST"),
    "signin_window_status": _http("launch/window/status", "GET"),
    "signin_window_resume": _http("launch/window/resume", "GET"),
    "visit_unlink": _http("visit/unlink", "POST"),
    "visit_page": _http("visit", "GET"),
    "visit_status": _http("visit/status", "GET"),
    "config_endpoints": _http("config/endpoints", "GET", "POST"),
    "config_endpoints_id": _http("config/endpoints/{id}", "GET", "PATCH", "DELETE"),
    "config_endpoints_id_validate": _http("config/endpoints/{id}/validate", "POST"),
    "config_endpoints_id_activate": _http("config/endpoints/{id}/activate", "POST"),
    "config_endpoints_id_disable": _http("config/endpoints/{id}/disable", "POST"),
    "config_endpoints_id_enable": _http("config/endpoints/{id}/enable", "POST"),
    "config_endpoints_id_approval": _http("config/endpoints/{id}/approval", "POST"),
    "config_endpoints_id_reject": _http("config/endpoints/{id}/reject", "POST"),
    "config_endpoints_id_integration_records": _http(
        "config/endpoints/{id}/integration-records", "GET"
    ),
    "config_endpoints_id_mappings": _http("config/endpoints/{id}/mappings", "GET"),
    "config_endpoints_id_mappings_mapping": _http(
        "config/endpoints/{id}/mappings/{mapping}", "DELETE"
    ),
    "config_secrets_setting": _http("config/secrets/{setting}", "GET"),
    "config_secrets_setting_hosts": _http("config/secrets/{setting}/hosts", "POST"),
    "config_audit": _http("config/audit", "GET"),
    "config_reports_visits": _http("reports/visits", "GET"),
    "config_reports_summary": _http("reports/summary", "GET"),
    "config_reports_thresholds": _http("config/reports/thresholds", "GET", "PUT"),
    "portal_home": _http("portal", "GET"),
    "portal_signin": _http("portal/signin", "GET"),
    "portal_signout": _http("portal/signout", "POST"),
    "portal_signed_out": _http("portal/signed-out", "GET"),
    "portal_endpoints": _http("portal/endpoints", "GET"),
    "portal_new_endpoint": _http("portal/new-endpoint", "GET", "POST"),
    "portal_endpoints_id": _http("portal/endpoints/{id}", "GET"),
    "portal_endpoints_id_edit": _http("portal/endpoints/{id}/edit", "GET", "POST"),
    "portal_endpoints_id_validate": _http("portal/endpoints/{id}/validate", "POST"),
    "portal_endpoints_id_activate": _http("portal/endpoints/{id}/activate", "POST"),
    "portal_endpoints_id_enable": _http("portal/endpoints/{id}/enable", "POST"),
    "portal_endpoints_id_disable": _http("portal/endpoints/{id}/disable", "POST"),
    "portal_endpoints_id_records": _http("portal/endpoints/{id}/records", "GET"),
    "portal_endpoints_id_mappings": _http("portal/endpoints/{id}/mappings", "GET"),
    "portal_endpoints_id_mappings_mapping_remove": _http(
        "portal/endpoints/{id}/mappings/{mapping}/remove", "POST"
    ),
    "portal_approvals": _http("portal/approvals", "GET"),
    "portal_approvals_id_start": _http("portal/approvals/{id}/start", "POST"),
    "portal_approvals_id_reject": _http("portal/approvals/{id}/reject", "POST"),
    "portal_secrets_setting_approve": _http("portal/secrets/{setting}/approve", "POST"),
    "portal_audit": _http("portal/audit", "GET"),
    "portal_writeback": _http("portal/writeback", "GET"),
    "portal_writeback_failure_replay": _http("portal/writeback/{failure}/replay", "POST"),
    "portal_reports": _http("portal/reports", "GET"),
    "portal_reports_csv": _http("portal/reports/csv", "GET"),
    "portal_reports_thresholds": _http("portal/reports/thresholds", "POST"),
    "portal_sms": _http("portal/sms", "GET"),
    "portal_sms_consent": _http("portal/sms/consent", "POST"),
    "portal_sms_orders": _http("portal/sms/orders", "POST"),
    "portal_sms_orders_order": _http("portal/sms/orders/{order}", "GET"),
    "portal_sms_numbers_number_link": _http("portal/sms/numbers/{number}/link", "POST"),
    "portal_sms_endpoints_id": _http("portal/sms/endpoints/{id}", "GET", "POST"),
    "portal_sms_certificates_environment": _http("portal/sms/certificates/{environment}", "POST"),
    "cleanup": {"trigger": "timerTrigger", "schedule": "0 */15 * * * *"},
    "warmup": {"trigger": "warmupTrigger"},  # the platform requires this name
    "visit_events": {"trigger": "queueTrigger", "queue": "visit-events"},
    "ehr_writeback": {"trigger": "queueTrigger", "queue": "ehr-writeback"},
    "writeback_sweep": {"trigger": "timerTrigger", "schedule": "0 */5 * * * *"},
    "config_writeback_failures": _http("config/writeback/failures", "GET"),
    "config_writeback_failures_failure_replay": _http(
        "config/writeback/failures/{failure}/replay", "POST"
    ),
    "sms_join": _http("j/{token}", "GET"),
    "visit_sms": _http("visit/sms", "GET"),
    "visit_sms_preview": _http("visit/sms/preview", "POST"),
    "visit_sms_send": _http("visit/sms", "POST"),
    "scheduling": _http("scheduling/{endpoint}", "POST"),
    "sms_events": _http("sms/events", "POST"),
    "config_sms_consent": _http("config/sms/consent", "GET", "PUT"),
    "config_sms_numbers": _http("config/sms/numbers", "GET"),
    "config_sms_numbers_number": _http("config/sms/numbers/{number}", "PUT"),
    "config_sms_number_orders": _http("config/sms/number-orders", "POST"),
    "config_sms_number_orders_order": _http("config/sms/number-orders/{order}", "GET"),
    "config_sms_endpoints_id": _http("config/sms/endpoints/{id}", "GET", "PATCH"),
    "config_sms_certificates_environment": _http(
        "config/sms/certificates/{environment}", "GET", "PUT"
    ),
    "reminders": {"trigger": "timerTrigger", "schedule": "%SMS_TIMER_SCHEDULE%"},
    "graph_notifications": _http("graph/notifications", "POST"),
    "graph_tasks": {"trigger": "queueTrigger", "queue": "graph-tasks"},
    "graph_subscriptions": {"trigger": "timerTrigger", "schedule": "%GRAPH_TIMER_SCHEDULE%"},
}


@pytest.fixture(scope="module")
def functions():
    mp = pytest.MonkeyPatch()
    for key, value in settings_env().items():
        mp.setenv(key, value)
    sys.modules.pop("function_app", None)
    app = importlib.import_module("function_app").app
    found = {f.get_function_name(): f for f in app.get_functions()}  # once per app object
    yield found
    mp.undo()


def test_exactly_the_expected_functions(functions):
    assert sorted(functions) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_function_shape(functions, name):
    want, fn = EXPECTED[name], functions[name]
    trigger = fn.get_trigger()
    assert trigger.get_binding_name() == want["trigger"]
    if want["trigger"] == "httpTrigger":
        assert trigger.route == want["route"]
        assert sorted(
            str(m.value if hasattr(m, "value") else m) for m in trigger.methods
        ) == sorted(want["methods"])
        assert str(trigger.auth_level.name) == want["auth"]
    elif want["trigger"] == "queueTrigger":
        assert trigger.queue_name == want["queue"]
        assert trigger.connection == "AzureWebJobsStorage"
    elif want["trigger"] == "timerTrigger":
        assert trigger.schedule == want["schedule"]
        assert not getattr(trigger, "run_on_startup", False)  # never in production
    elif want["trigger"] == "warmupTrigger":
        assert name == "warmup"  # one per app, and Azure finds it by this name
    else:
        pytest.fail(f"{name}: add a shape check for {want['trigger']} here")


def test_routes_are_unique(functions):
    seen = set()
    for fn in functions.values():
        t = fn.get_trigger()
        if t.get_binding_name() == "httpTrigger":
            for m in t.methods:
                key = (t.route, str(m))
                assert key not in seen
                seen.add(key)
