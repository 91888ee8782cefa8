"""CONNECTOR_FRAME_ORIGINS: a deployment-wide ceiling on which origins may frame the app's pages.

The endpoints name their EHR origins (config API, admins); whoever deploys can cap them. The cap
is applied where every answer gets its security headers (functions/_http.py), so no page can
name an origin outside it.
"""

from __future__ import annotations

import azure.functions as func
import pytest

import functions._http as http_adapter
import lib.settings
from dev.stack import settings_env
from lib.settings import SettingsError, load_settings
from lib.web.http import Response
from lib.web.render import security_headers

EHR = "https://ehr.example.org"
OTHER = "https://elsewhere.example.com:8443"


def _settings(value: str):
    return load_settings(settings_env(CONNECTOR_FRAME_ORIGINS=value))


def test_the_setting_reads_origins_and_refuses_what_is_not_one():
    assert _settings("").frame_ceiling is None
    assert _settings(f" {EHR.upper()} , {OTHER}").frame_ceiling == {EHR, OTHER}
    for bad in ("http://ehr.example.org", "https://ehr.example.org/path", "ehr.example.org", "*"):
        with pytest.raises(SettingsError, match="CONNECTOR_FRAME_ORIGINS"):
            _settings(bad)


def _csp(frame_ancestors, ceiling):
    page = Response.html("<p>visit</p>")
    page.frame_ancestors = frame_ancestors
    return security_headers(page, frame_ceiling=ceiling).headers


def test_origins_outside_the_ceiling_never_frame():
    h = _csp((EHR, OTHER), frozenset({EHR}))
    assert h["Content-Security-Policy"].endswith(f"frame-ancestors {EHR}")
    assert OTHER not in h["Content-Security-Policy"]


def test_a_ceiling_that_allows_none_of_them_denies_framing():
    h = _csp((OTHER,), frozenset({EHR}))
    assert h["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert h["X-Frame-Options"] == "DENY"


def test_without_a_ceiling_the_endpoints_decide():
    assert _csp((EHR, OTHER), None)["Content-Security-Policy"].endswith(
        f"frame-ancestors {EHR} {OTHER}"
    )


def test_the_adapter_applies_the_deployments_ceiling(monkeypatch):
    monkeypatch.setattr(lib.settings, "get_settings", lambda: _settings(EHR))

    @http_adapter.handler(pages=True)
    def visit(request):
        page = Response.html("<p>visit</p>")
        page.frame_ancestors = (EHR, OTHER)
        return page

    answer = visit(func.HttpRequest("GET", "http://127.0.0.1/api/visit", body=b""))
    csp = answer.headers["Content-Security-Policy"]
    assert EHR in csp and OTHER not in csp
