"""The reference an error answer gives (`requestId`, the error page's "reference", the log line):
the caller's X-Request-Id when it looks like one, so a support call can be traced across a
gateway; anything else (a page of text, markup, line breaks) is replaced, not echoed back."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import functions._http as http_adapter
import lib.settings
from dev.stack import settings_env
from lib.settings import load_settings
from lib.web.errors import AppError


@pytest.fixture
def refused(monkeypatch):
    monkeypatch.setattr(lib.settings, "get_settings", lambda: load_settings(settings_env()))

    @http_adapter.handler()
    def api(request):
        raise AppError("CFG-BAD-QUERY")

    def call(request_id: str) -> str:
        req = func.HttpRequest("GET", "http://127.0.0.1/api/reports/visits", body=b"",
                               headers={"X-Request-Id": request_id})  # fmt: skip
        return json.loads(api(req).get_body())["requestId"]

    return call


GUID = "a1b2c3d4-e5f6-4a1b-8c9d-0e1f2a3b4c5d"


@pytest.mark.parametrize("given", ["3f2a9c1e7b8d4e06", "0HN7:00000001", GUID])
def test_a_request_id_that_looks_like_one_is_kept(refused, given):
    assert refused(given) == given


@pytest.mark.parametrize("given", ["x" * 5000, "<script>alert(1)</script>", "a\r\nb", "", "é"])
def test_anything_else_is_replaced_not_echoed(refused, given):
    got = refused(given)
    assert got != given and len(got) == 16 and got.isalnum()
