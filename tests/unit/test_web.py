"""Problem JSON, error pages, security headers, the error catalogue."""

from __future__ import annotations

import json
import re

import pytest

from lib.web.errors import CATALOGUE, AppError, catalogue_markdown
from lib.web.http import Headers, Request, Response
from lib.web.render import error_page, page, problem, security_headers


def test_problem_json_has_rfc7807_members_and_our_code():
    err = AppError("REQ-VALIDATION", errors=[{"field": "vendor", "message": "not allowed"}])
    resp = problem(err, instance="/api/config/endpoints", request_id="abc")
    body = json.loads(resp.body)
    assert resp.status == 422 and resp.content_type == "application/problem+json"
    assert body["type"].endswith("#REQ-VALIDATION") and body["status"] == 422
    assert body["code"] == "REQ-VALIDATION" and body["errors"][0]["field"] == "vendor"
    assert body["instance"] == "/api/config/endpoints" and body["requestId"] == "abc"


def test_unknown_error_code_is_a_programming_error():
    with pytest.raises(KeyError):
        AppError("NOPE-NOT-A-CODE")


def test_error_page_escapes_and_shows_code():
    resp = security_headers(error_page(AppError("REQ-NOT-FOUND", detail="<script>x</script>")))
    html = resp.body.decode()
    assert resp.status == 404 and "REQ-NOT-FOUND" in html
    assert "<script>x" not in html and "&lt;script&gt;" in html
    nonce = re.search(r'nonce="([^"]+)"', html).group(1)
    csp = resp.headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "X-CSP-Nonce" not in resp.headers


def test_page_headers_allow_named_ehr_origins_to_frame():
    resp = page(
        "error.html", code="X", title="t", sentence="s", detail=None, fix="f", request_id=None
    )
    resp.frame_ancestors = ("https://ehr.example.org",)
    resp.form_action = ("https://auth.example.org",)
    h = security_headers(resp).headers
    assert "frame-ancestors https://ehr.example.org" in h["Content-Security-Policy"]
    assert "form-action 'self' https://auth.example.org" in h["Content-Security-Policy"]
    assert "X-Frame-Options" not in h
    assert h["Referrer-Policy"] == "no-referrer" and h["Cache-Control"] == "no-store"


def test_api_headers():
    h = security_headers(Response.json({"a": 1})).headers
    assert h["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"


def test_request_json_errors():
    def req(body: bytes, ctype: str = "application/json") -> Request:
        return Request("POST", "http://x/api/a", Headers({"Content-Type": ctype}), body=body)

    assert req(b'{"a": 1}').json() == {"a": 1}
    for body, ctype, code in [
        (b"{nope", "application/json", "REQ-BAD-JSON"),
        (b"{}", "text/plain", "REQ-UNSUPPORTED-MEDIA"),
        (b"[" + b"1," * 40000 + b"1]", "application/json", "REQ-TOO-LARGE"),
    ]:
        with pytest.raises(AppError) as exc:
            req(body, ctype).json()
        assert exc.value.code == code


def test_headers_are_case_insensitive():
    h = Headers({"Content-Type": "a"})
    assert h["content-type"] == "a" and h.get("CONTENT-TYPE") == "a" and "Content-type" in h


def test_the_catalogue_table_has_one_row_per_code():
    # That the README holds exactly this table is tests/unit/test_docs.py's job.
    rows = catalogue_markdown().splitlines()[2:]
    codes = [row.split(" | ")[0].removeprefix("| `").rstrip("`") for row in rows]
    assert codes == sorted(CATALOGUE)


def test_catalogue_entries_are_complete():
    for entry in CATALOGUE.values():
        assert re.fullmatch(r"[A-Z]+(-[A-Z0-9]+)+", entry.code)
        assert 400 <= entry.status < 600 and entry.sentence.endswith(".") and entry.fix


def test_hsts_only_when_the_app_is_served_over_https():
    assert "Strict-Transport-Security" not in security_headers(Response.json({})).headers
    for answer in (Response.json({}), page("error.html", code="X", title="t", sentence="s",
                                           detail=None, fix="f", request_id=None)):  # fmt: skip
        h = security_headers(answer, https=True).headers
        assert h["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize(
    ("dest", "framed"),
    [("iframe", True), ("frame", True), ("document", False), ("empty", False), (None, False)],
)
def test_a_navigation_says_whether_it_runs_in_a_frame(dest, framed):
    headers = Headers({"Sec-Fetch-Dest": dest} if dest else {})
    assert Request("GET", "https://x/api/launch/callback", headers).framed is framed
