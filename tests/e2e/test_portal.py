"""The admin portal over real HTTP: sign-in through the sandbox's Entra ID, the session cookie,
CSRF, and each page's roles; then the admin's and the approver's steps through the forms."""

from __future__ import annotations

import html
import re
import uuid

import pytest

from lib.portal.app import PAGES
from tests.e2e.portal_client import ETAG, Portal, error_code

ROLES = {"admin": "admin", "approver": "approver", "reader": "reader", "none": "reyes"}
# Which kinds of user each page's roles let in (admins and approvers also read).
ALLOWED = {
    (): {"admin", "approver", "reader", "none"},
    ("Connector.Admin",): {"admin"},
    ("Connector.Approver",): {"approver"},
    ("Connector.Approver", "Connector.Admin"): {"approver", "admin"},
    ("Connector.Reader",): {"admin", "approver", "reader"},
}
SAMPLE = {
    "id": "no-such-endpoint",
    "mapping": "0" * 32,
    "setting": "EHR_SECRET_NONE",
    "failure": f"poison~{'0' * 13}-{'0' * 32}",
    "order": "0" * 16,
    "number": "%2B18335550199",
    "environment": "test",
}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path).removeprefix("portal")


@pytest.fixture(scope="module", autouse=True)
def leaves_the_bases_free(app):
    """One base URL, one endpoint: what this module registers goes when it is done."""
    yield
    for base in (
        app.sandbox.ehr_base("epic"),
        app.sandbox.ehr_base("cerner"),
        app.sandbox.variant_base("moved-hosts", vendor="cerner"),
    ):
        without_base(app, base)


@pytest.fixture(scope="module")
def people(app):
    signed = {kind: Portal(app, user) for kind, user in ROLES.items()}
    yield signed
    for p in signed.values():
        p.close()


def test_sign_in_sets_a_host_only_secure_lax_cookie_and_reads_the_roles(app):
    portal = Portal(app)
    back = portal.sign_in("admin", next_path="/api/portal/audit")
    cookie = back.headers["Set-Cookie"]
    assert cookie.startswith("__Host-evc_portal=")
    for attribute in ("Path=/", "HttpOnly", "Secure", "SameSite=Lax"):
        assert attribute in cookie
    assert back.headers["Location"] == "/api/portal/audit"  # back where they were going
    home = portal.get()
    assert home.status_code == 200
    assert "Connector.Admin" in home.text and "Morgan Admin" in home.text
    csp = home.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'nonce-" in csp
    assert home.headers["X-Frame-Options"] == "DENY"
    assert home.headers["Cache-Control"] == "no-store"


def test_the_sign_in_goes_back_only_to_portal_pages(app):
    portal = Portal(app)
    assert (
        portal.sign_in("reader", next_path="https://evil.example/x").headers["Location"]
        == "/api/portal"
    )


def test_without_a_session_pages_send_to_the_sign_in_and_actions_are_refused(app):
    anonymous = Portal(app)
    for page in PAGES:
        if page.roles is None:
            continue
        path = concrete(page.path)
        if page.method == "GET":
            resp = anonymous.get(path)
            assert resp.status_code == 303, path
            assert resp.headers["Location"].startswith("/api/portal/signin?next=/api/portal")
        else:
            resp = anonymous.post(path, {}, csrf="x")
            assert resp.status_code == 401 and error_code(resp) == "PORTAL-SIGNED-OUT", path


def test_a_forged_cookie_counts_as_no_session(app):
    anonymous = Portal(app)
    anonymous.s.cookies.set("__Host-evc_portal", "v1.abc.def")
    assert anonymous.get("endpoints").status_code == 303


@pytest.mark.parametrize("page", [p for p in PAGES if p.roles is not None],
                         ids=lambda p: f"{p.method} {p.path}")  # fmt: skip
def test_every_page_and_action_checks_the_role(people, page):
    allowed = ALLOWED[tuple(r.value for r in page.roles)]
    path = concrete(page.path)
    for kind, portal in people.items():
        portal.get()  # a fresh CSRF token for the POSTs
        if page.method == "GET":
            resp = portal.get(path)
        else:
            if kind in allowed:
                continue  # the journeys below exercise what allowed posts do
            resp = portal.post(path, {"reason": "not mine", "host": "x.example"})
        if kind in allowed:
            assert resp.status_code in (200, 404), (kind, path, resp.status_code)
            if resp.status_code == 404:
                assert error_code(resp) in ("CFG-ENDPOINT-NOT-FOUND", "SMS-ORDER-NOT-FOUND")
        else:
            assert resp.status_code == 403, (kind, path, resp.status_code)
            assert error_code(resp) == "AUTH-FORBIDDEN-ROLE", (kind, path)


def test_the_menu_shows_only_what_the_role_may_open(people):
    reader = people["reader"].get().text
    assert 'href="/api/portal/reports"' in reader
    assert 'href="/api/portal/endpoints"' not in reader
    assert 'href="/api/portal/approvals"' not in reader
    approver = people["approver"].get().text
    assert 'href="/api/portal/approvals"' in approver
    assert 'href="/api/portal/endpoints"' not in approver
    assert "has no role" in people["none"].get().text


def test_reports_show_charts_tables_and_visits_and_download_as_csv(app, people):
    from tests.e2e.reports_seed import report_range, seed_and_wait

    visits = seed_and_wait(app, "rpt-portal", 2, 3)
    query = {**report_range("rpt-portal", 2), "preset": "custom"}
    page = people["reader"].get("reports", params=query)
    assert page.status_code == 200
    for chart in ("visits-per-day", "lobby-wait", "poor-calls"):
        assert f'data-testid="chart-{chart}"' in page.text
        assert f'data-testid="chart-{chart}-data"' in page.text  # its numbers as a table
    assert page.text.count("data-visit=") == len(visits)
    assert '<th scope="col">Appointment</th>' not in page.text  # admins only
    assert '<th scope="col">Appointment</th>' in people["admin"].get("reports", params=query).text
    csv = people["reader"].get("reports/csv", params=query)
    assert csv.status_code == 200 and csv.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert csv.content.startswith(b"\xef\xbb\xbf") and csv.content.count(b"\r\n") == len(visits) + 1


def test_report_filters_that_make_no_range_are_named_on_the_page(people):
    page = people["reader"].get("reports", params={"preset": "custom", "from": "2026-03-09",
                                                  "to": "2026-03-01"})  # fmt: skip
    assert page.status_code == 422 and "RPT-BAD-RANGE" in page.text


def test_a_next_page_link_of_another_range_is_named_on_the_page(people):
    from datetime import date

    from lib.reports.ranges import Position

    token = Position(date(2026, 3, 2), "rpt-portal", "20260302T150200-vkabcdefgh").token()
    other = {"preset": "custom", "from": "2020-01-01", "to": "2020-01-31"}
    page = people["reader"].get("reports", params={**other, "continuation": token})
    assert page.status_code == 422 and "RPT-BAD-CONTINUATION" in page.text


def test_admin_changes_the_poor_call_thresholds_on_the_reports_page(app, people):
    """The same service as PUT /api/config/reports/thresholds: a typo is named and kept on the
    form, a change under an old ETag is refused with the current values shown, and a change is
    audited and judges the reports at once. The defaults are put back (other tests judge)."""
    admin, reader = people["admin"], people["reader"]
    assert 'data-testid="thresholds-form"' not in reader.get("reports").text  # admins only
    page = admin.get("reports", params={"preset": "7d"})
    etag = html.unescape(ETAG.search(page.text).group(1))
    before = {"round_trip_ms": "500", "packet_loss": "0.1", "jitter_ms": "30", "media": "audio"}
    for name, value in before.items():
        assert f'name="{name}" value="{value}"' in page.text
    typo = admin.post("reports/thresholds?preset=7d", {**before, "jitter_ms": "3O", "etag": etag})
    assert typo.status_code == 422
    assert "Average jitter" in typo.text and 'name="jitter_ms" value="3O"' in typo.text
    try:
        saved = admin.post(
            "reports/thresholds?preset=7d",
            {**before, "jitter_ms": "12.5", "media": "Audio, video", "etag": etag},
        )
        assert saved.status_code == 303, saved.text[:500]
        assert saved.headers["Location"].startswith("/api/portal/reports?preset=7d&saved=")
        shown = admin.get(saved.headers["Location"].removeprefix("/api/portal/"))
        assert 'data-testid="thresholds-saved"' in shown.text
        assert 'name="jitter_ms" value="12.5"' in shown.text
        api = app.session("reader").get(app.api("config/reports/thresholds")).json()
        assert api["jitter_ms"] == 12.5 and api["media"] == ["audio", "video"]
        stale = admin.post("reports/thresholds", {**before, "jitter_ms": "99", "etag": etag})
        assert stale.status_code == 412 and "CFG-STALE-ETAG" in stale.text
        assert 'name="jitter_ms" value="12.5"' in stale.text  # what is there now, to decide on
        audit = (
            app.session("admin")
            .get(app.api("config/audit"), params={"action": "reports.thresholds"})
            .json()
        )
        latest = audit["items"][0]
        assert latest["after"]["jitter_ms"] == 12.5 and latest["before"]["jitter_ms"] == 30
    finally:
        current = admin.get("reports")
        back = admin.post(
            "reports/thresholds",
            {**before, "etag": html.unescape(ETAG.search(current.text).group(1))},
        )
        assert back.status_code == 303


@pytest.mark.parametrize("typed", ["1_000", "\u0663\u0660", "nan", "inf", "1e309", "0x10", "30 ms"])
def test_a_threshold_typed_as_no_plain_decimal_is_named_and_changes_nothing(app, people, typed):
    """Python's float() reads "1_000" as 1000 and Arabic-Indic "٣٠" as 30: the form takes plain
    decimals only, so what is saved is what the admin sees."""
    admin = people["admin"]
    page = admin.get("reports")
    etag = html.unescape(ETAG.search(page.text).group(1))
    form = {"round_trip_ms": "500", "packet_loss": "0.1", "jitter_ms": typed, "media": "audio"}
    refused = admin.post("reports/thresholds", {**form, "etag": etag})
    assert refused.status_code == 422, (typed, refused.status_code)
    assert "Average jitter" in refused.text
    assert f'name="jitter_ms" value="{html.escape(typed)}"' in refused.text  # kept to correct
    assert app.session("reader").get(app.api("config/reports/thresholds")).json()["jitter_ms"] == 30


def test_posts_need_the_sessions_csrf_token(app, people):
    admin = people["admin"]
    admin.get("endpoints")
    missing = admin.post("new-endpoint", {}, csrf="")
    assert missing.status_code == 403 and error_code(missing) == "PORTAL-CSRF"
    typed = admin.post("new-endpoint", {}, csrf="\u00e9")  # not even ASCII
    assert typed.status_code == 403 and error_code(typed) == "PORTAL-CSRF"
    people["reader"].get()
    theirs = admin.post("new-endpoint", {}, csrf=people["reader"].csrf)  # another session's
    assert theirs.status_code == 403 and error_code(theirs) == "PORTAL-CSRF"
    foreign = admin.post("new-endpoint", {}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and error_code(foreign) == "PORTAL-CSRF"
    cross_site = admin.post("new-endpoint", {}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403 and error_code(cross_site) == "PORTAL-CSRF"


def test_sign_out_ends_the_session_here_and_for_a_copy_of_its_cookie(app):
    portal = Portal(app, "reader")
    assert portal.get("reports").status_code == 200
    copy = Portal(app)  # another browser holding a copy of the cookie (a shared computer)
    copy.s.cookies.update(portal.s.cookies)
    assert copy.get("reports").status_code == 200
    out = portal.post("signout")
    assert out.status_code == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert portal.get("reports").status_code == 303  # to the sign-in
    assert copy.get("reports").status_code == 303  # the copy stopped working too
    refused = copy.post("signout", csrf=copy.csrf)
    assert refused.status_code == 401 and error_code(refused) == "PORTAL-SIGNED-OUT"
    copy.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def without_base(app, base: str) -> None:
    """One base URL, one endpoint: take the sandbox's base back from earlier tests."""
    s = app.session("admin")
    for item in s.get(app.api("config/endpoints"), timeout=10).json()["items"]:
        if item["fhir_base_url"] == base.rstrip("/"):
            etag = s.get(app.api(f"config/endpoints/{item['id']}"), timeout=10).headers["ETag"]
            s.delete(app.api(f"config/endpoints/{item['id']}"), headers={"If-Match": etag})


def epic_form(app, endpoint_id: str) -> dict:
    from dev.sandbox import directory

    approver = directory.user("approver")
    return {
        "id": endpoint_id,
        "vendor": "epic",
        "environment": "test",
        "organization": "Portal Health",
        "fhir_base_url": app.sandbox.ehr_base("epic"),
        "client_id": "evc-epic-test",
        "auth_method": "client_secret_basic",
        "secret_setting": "EHR_SECRET_EPIC",
        "approver_oid": approver.object_id,
        "approver_name": approver.name,
        "ehr_origins": app.sandbox.origins["epic"],
    }


def test_a_form_with_mistakes_names_each_problem_and_keeps_what_was_typed(people):
    admin = people["admin"]
    admin.get("new-endpoint")
    resp = admin.post("new-endpoint", {"organization": "Typed Clinic", "vendor": "epic",
                                       "environment": "test", "auth_method": "private_key_jwt",
                                       "fhir_base_url": "ftp://nope"})  # fmt: skip
    assert resp.status_code == 422
    assert "FHIR base URL" in resp.text and "Client id" in resp.text
    assert 'value="Typed Clinic"' in resp.text


def test_admin_adds_edits_and_the_approver_approves(app, people):
    without_base(app, app.sandbox.ehr_base("epic"))
    admin, approver = people["admin"], people["approver"]
    eid = unique("portal-epic")
    admin.get("new-endpoint")
    added = admin.post("new-endpoint", epic_form(app, eid))
    assert added.status_code == 303 and added.headers["Location"] == f"/api/portal/endpoints/{eid}"
    page = admin.get(f"endpoints/{eid}")
    assert "awaiting approval" in page.text and 'data-validation="ok"' in page.text

    # Edit with the ETag the form was read at; a second save with the same one is refused.
    form = admin.get(f"endpoints/{eid}/edit")
    etag = html.unescape(ETAG.search(form.text).group(1))
    changed = {**epic_form(app, eid), "organization": "Portal Health East", "etag": etag}
    assert admin.post(f"endpoints/{eid}/edit", changed).status_code == 303
    stale = admin.post(f"endpoints/{eid}/edit", {**changed, "organization": "Again"})
    assert stale.status_code == 412 and "CFG-STALE-ETAG" in stale.text

    # Records exist only once the endpoint is active.
    assert "CFG-NOT-ACTIVE" in admin.get(f"endpoints/{eid}/records").text
    assert f'data-testid="approve-{eid}"' in approver.get("approvals").text
    approved = approver.ehr_approve(eid)
    assert approved.status_code == 200 and "Endpoint approved" in approved.text
    records = admin.get(f"endpoints/{eid}/records")
    assert records.status_code == 200
    assert app.api("launch/callback") in records.text and "data-copy" in records.text

    # Disable and enable, each audited; the audit page filters by endpoint and action.
    admin.get(f"endpoints/{eid}")
    assert admin.post(f"endpoints/{eid}/disable").status_code == 303
    assert admin.post(f"endpoints/{eid}/enable").status_code == 303
    log = admin.get(f"audit?endpoint={eid}&action=endpoint.disable").text
    assert log.count("data-action>endpoint.disable<") == 1
    assert "data-action>endpoint.create<" not in log
    full = admin.get(f"audit?endpoint={eid}").text
    for action in ("endpoint.create", "endpoint.update", "endpoint.approve", "endpoint.enable"):
        assert f"data-action>{action}<" in full
    bad = admin.get("audit?since=yesterday")
    assert bad.status_code == 422 and "since" in bad.text


def test_admin_removes_a_clinician_mapping_and_it_is_audited(app, people):
    from tests.e2e.test_config_api import cerner_body, create, delete_all_with_base

    delete_all_with_base(app, app.sandbox.ehr_base("cerner"))
    endpoint = create(app, cerner_body(app)).json()
    eid = endpoint["id"]
    svc_mapping = "ab" * 16
    _put_mapping(app, eid, svc_mapping)
    admin = people["admin"]
    page = admin.get(f"endpoints/{eid}/mappings")
    assert svc_mapping in page.text
    removed = admin.post(f"endpoints/{eid}/mappings/{svc_mapping}/remove")
    assert removed.status_code == 303
    assert 'data-testid="no-mappings"' in admin.get(f"endpoints/{eid}/mappings").text
    assert "data-action>mapping.delete<" in admin.get(f"audit?endpoint={eid}").text
    again = admin.post(f"endpoints/{eid}/mappings/{svc_mapping}/remove")
    assert again.status_code == 404 and error_code(again) == "CFG-MAPPING-NOT-FOUND"


def _put_mapping(app, endpoint_id: str, clinician_hash: str) -> None:
    from azure.data.tables import TableServiceClient

    from lib.storage import TableStore
    from lib.visits.mappings import ClinicianMappings

    # What a clinician's first Microsoft sign-in leaves (the launch tests make real ones).
    store = TableStore(TableServiceClient.from_connection_string(app.storage), prefix="e2e")
    ClinicianMappings(store).put(endpoint_id, clinician_hash, str(uuid.uuid4()))


def test_the_approver_allows_a_new_token_host_for_a_secret(app, people):
    """An admin points a second endpoint's secret at another token host: the approver sees the
    request on the approvals page and allows it (a second person, audited)."""
    from tests.e2e.test_config_api import cerner_body, create, delete_all_with_base

    setting = f"EHR_SECRET_PORTAL_{uuid.uuid4().hex[:8].upper()}"  # this test's own binding
    auth = {"method": "client_secret_basic", "secret_setting": setting}
    delete_all_with_base(app, app.sandbox.ehr_base("cerner"))
    create(app, cerner_body(app, client_auth=auth))  # binds the setting to the first host
    moved = app.sandbox.variant_base("moved-hosts", vendor="cerner")
    delete_all_with_base(app, moved)
    create(app, cerner_body(app, fhir_base_url=moved, client_auth=auth))
    approver = people["approver"]
    page = approver.get("approvals")
    assert setting in page.text
    form = re.compile(
        rf'action="/api/portal/secrets/{setting}/approve">\s*'
        r'<input type="hidden" name="csrf" value="[^"]+">\s*'
        r'<input type="hidden" name="host" value="([^"]+)">'
    )
    host = form.search(page.text).group(1)
    allowed = approver.post(f"secrets/{setting}/approve", {"host": host})
    assert allowed.status_code == 303
    assert setting not in approver.get("approvals").text
    bound = app.session("reader").get(app.api(f"config/secrets/{setting}")).json()
    assert host in bound["hosts"] and bound["pending"] == []
    again = approver.post(f"secrets/{setting}/approve", {"host": host})
    assert again.status_code == 404 and "CFG-SECRET-HOST-NOT-PENDING" in again.text
