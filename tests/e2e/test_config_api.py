"""The config API over real HTTP: local host + sandbox EHRs and Entra ID + Azurite."""

from __future__ import annotations

import uuid

import pytest
import requests

from dev.stack import CERNER_SECRET, EPIC_SECRET


@pytest.fixture(scope="module")
def approver(app) -> dict:
    from dev.sandbox import directory

    user = next(u for u in directory.USERS if u.key == "approver")
    return {"oid": user.object_id, "display_name": user.name}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def epic_body(app, approver: dict | None, **over) -> dict:
    body = {
        "id": unique("epic-test"),
        "fhir_base_url": app.sandbox.ehr_base("epic"),
        "vendor": "epic",
        "environment": "test",
        "organization": unique("Contoso Health"),
        "client_id": "evc-epic-test",
        "client_auth": {"method": "client_secret_basic", "secret_setting": "EHR_SECRET_EPIC"},
        "approver": approver,
    }
    body.update(over)
    return body


def cerner_body(app, **over) -> dict:
    body = {
        "id": unique("cerner-test"),
        "fhir_base_url": app.sandbox.ehr_base("cerner"),
        "vendor": "cerner",
        "environment": "test",
        "organization": unique("Fabrikam Clinics"),
        "client_id": "evc-cerner-test",
        "client_auth": {"method": "client_secret_basic", "secret_setting": "EHR_SECRET_CERNER"},
    }
    body.update(over)
    return body


def create(app, body: dict, role: str = "admin") -> requests.Response:
    return app.session(role).post(app.api("config/endpoints"), json=body, timeout=30)


def delete_all_with_base(app, base: str) -> None:
    """Each test registers the sandbox base anew: one base URL, one endpoint."""
    s = app.session("admin")
    for item in s.get(app.api("config/endpoints"), timeout=10).json()["items"]:
        if item["fhir_base_url"] == base.rstrip("/"):
            etag = s.get(app.api(f"config/endpoints/{item['id']}"), timeout=10).headers["ETag"]
            s.delete(app.api(f"config/endpoints/{item['id']}"), headers={"If-Match": etag})


@pytest.fixture
def fresh(app):
    for vendor in ("epic", "cerner"):
        delete_all_with_base(app, app.sandbox.ehr_base(vendor))
    yield


def approve(app, endpoint_id: str, user: str = "approver") -> requests.Response:
    """The named approver starts approval and signs in at the sandbox EHR; returns the callback."""
    s = app.session("approver", user)
    started = s.post(app.api(f"config/endpoints/{endpoint_id}/approval"), timeout=30)
    assert started.status_code == 201, started.text
    return app.sandbox.ehr_standalone_sign_in(started.json()["authorize_url"])


# --- the journeys ----------------------------------------------------------------------------
def test_cerner_endpoint_is_active_after_validation_alone(app, fresh):
    resp = create(app, cerner_body(app))
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert data["status"] == "active" and data["validation"]["ok"] is True
    assert data["validation"]["fhir_version"] == "R4"
    assert resp.headers["ETag"] and resp.headers["Location"].endswith(data["id"])
    records = app.session("reader").get(
        app.api(f"config/endpoints/{data['id']}/integration-records")
    )
    assert records.status_code == 200
    rec = records.json()
    assert rec["redirect_uri"] == f"{app.url}/api/launch/callback"
    assert rec["provider_launch_url"] == f"{app.url}/api/launch/{data['id']}/provider"
    text = app.session("reader").get(
        app.api(f"config/endpoints/{data['id']}/integration-records?format=text")
    )
    assert text.headers["Content-Type"].startswith("text/plain") and "Redirect uri" in text.text


def test_epic_endpoint_needs_the_named_approver(app, approver, fresh):
    body = epic_body(app, approver)
    resp = create(app, body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "awaiting_approval"
    eid = body["id"]
    # not active yet: no integration records
    early = app.session("reader").get(app.api(f"config/endpoints/{eid}/integration-records"))
    assert early.status_code == 409 and early.json()["code"] == "CFG-NOT-ACTIVE"
    # an admin cannot approve (wrong role), another approver cannot (not the named one)
    as_admin = app.session("admin").post(app.api(f"config/endpoints/{eid}/approval"))
    assert as_admin.status_code == 403 and as_admin.json()["code"] == "AUTH-FORBIDDEN-ROLE"
    other = app.sandbox.entra.mint(roles=["Connector.Approver"], user="reyes")
    as_other = app.session().post(
        app.api(f"config/endpoints/{eid}/approval"), headers={"Authorization": f"Bearer {other}"}
    )
    assert as_other.status_code == 403 and as_other.json()["code"] == "CFG-NOT-APPROVER"
    # the named approver signs in at the EHR; the callback page confirms
    page = approve(app, eid)
    assert page.status_code == 200, page.text
    assert "Endpoint approved" in page.text and page.headers["Cache-Control"] == "no-store"
    got = app.session("reader").get(app.api(f"config/endpoints/{eid}")).json()
    assert got["status"] == "active"
    assert got["approval"]["approved_by"] == approver["oid"] and got["approval"]["ehr_user"]
    records = app.session("reader").get(app.api(f"config/endpoints/{eid}/integration-records"))
    assert records.status_code == 200 and records.json()["client_id"] == "evc-epic-test"


def test_approval_callback_cannot_be_replayed(app, approver, fresh):
    body = epic_body(app, approver)
    create(app, body)
    s = app.session("approver")
    url = s.post(app.api(f"config/endpoints/{body['id']}/approval")).json()["authorize_url"]
    final = app.sandbox.ehr_standalone_sign_in(url)
    assert final.status_code == 200
    replay = app.session().get(final.url, headers={"Accept": "text/html"})
    assert replay.status_code == 400 and "LAUNCH-STATE-REUSED" in replay.text


def test_rejection_returns_the_reason(app, approver, fresh):
    body = epic_body(app, approver)
    create(app, body)
    s = app.session("approver")
    resp = s.post(app.api(f"config/endpoints/{body['id']}/reject"), json={"reason": "Wrong org"})
    assert resp.status_code == 200 and resp.json()["status"] == "rejected"
    assert resp.json()["approval"]["reason"] == "Wrong org"


def test_production_needs_an_active_test_endpoint(app, fresh):
    org = unique("Northwind")
    prod = cerner_body(app, environment="production", organization=org)
    resp = create(app, prod)
    assert resp.status_code == 201 and resp.json()["status"] == "awaiting_test"
    blocked = app.session("admin").post(app.api(f"config/endpoints/{prod['id']}/activate"))
    assert blocked.status_code == 409 and blocked.json()["code"] == "CFG-PRODUCTION-NEEDS-TEST"
    assert org in blocked.json()["detail"]
    # a test endpoint of the same organization (on the Epic-like base: one base, one endpoint;
    # Cerner needs no approval, so validation alone makes it active)
    test = cerner_body(
        app,
        organization=org,
        fhir_base_url=app.sandbox.ehr_base("epic"),
        client_auth={"method": "client_secret_basic", "secret_setting": "EHR_SECRET_EPIC"},
    )
    made = create(app, test)
    assert made.json()["status"] == "active", made.text
    ok = app.session("admin").post(app.api(f"config/endpoints/{prod['id']}/activate"))
    assert ok.status_code == 200 and ok.json()["status"] == "active"


def test_updates_need_the_current_etag(app, fresh):
    body = cerner_body(app)
    first = create(app, body)
    url = app.api(f"config/endpoints/{body['id']}")
    s = app.session("admin")
    missing = s.patch(url, json={"organization": "X"})
    assert missing.status_code == 428 and missing.json()["code"] == "CFG-IF-MATCH-REQUIRED"
    ok = s.patch(url, json={"organization": "Renamed"}, headers={"If-Match": first.headers["ETag"]})
    assert ok.status_code == 200 and ok.json()["organization"] == "Renamed"
    stale = s.patch(url, json={"organization": "Y"}, headers={"If-Match": first.headers["ETag"]})
    assert stale.status_code == 412 and stale.json()["code"] == "CFG-STALE-ETAG"
    gone = s.delete(url, headers={"If-Match": first.headers["ETag"]})
    assert gone.status_code == 412
    assert s.delete(url, headers={"If-Match": ok.headers["ETag"]}).status_code == 204
    assert s.get(url).status_code == 404


def test_audit_trail_of_create_approve_update(app, approver, fresh):
    body = epic_body(app, approver)
    created = create(app, body)
    approve(app, body["id"])
    etag = app.session("admin").get(app.api(f"config/endpoints/{body['id']}")).headers["ETag"]
    app.session("admin").patch(
        app.api(f"config/endpoints/{body['id']}"),
        json={"organization": "Audited Org"},
        headers={"If-Match": etag},
    )
    trail = app.session("reader").get(app.api(f"config/audit?endpoint={body['id']}")).json()
    actions = [e["action"] for e in trail["items"]]
    assert actions == ["endpoint.update", "endpoint.approve", "endpoint.create"]
    update, approval, creation = trail["items"]
    assert update["before"]["organization"] == body["organization"]
    assert update["after"]["organization"] == "Audited Org"
    assert approval["actor_oid"] == approver["oid"] and creation["before"] is None
    assert created.status_code == 201
    page = app.session("reader").get(app.api(f"config/audit?endpoint={body['id']}&pageSize=2"))
    assert len(page.json()["items"]) == 2 and page.json()["continuation"]
    rest = app.session("reader").get(
        app.api(
            f"config/audit?endpoint={body['id']}&pageSize=2"
            f"&continuation={page.json()['continuation']}"
        )
    )
    assert [e["action"] for e in rest.json()["items"]] == ["endpoint.create"]


# --- validation failures, one per misbehaving sandbox variant --------------------------------
VARIANTS = {
    "no-s256": "DISC-NO-S256",
    "plain": "DISC-PLAIN-PKCE",
    "no-token-endpoint": "DISC-MISSING-TOKEN-ENDPOINT",
    "no-authorize-endpoint": "DISC-MISSING-AUTHORIZE-ENDPOINT",
    "not-json": "DISC-NOT-JSON",
    "http-500": "DISC-HTTP-STATUS",
    "redirect-other-host": "DISC-REDIRECT",
    "no-openid": "DISC-NO-OPENID",
    "no-auth-methods": "DISC-NO-CLIENT-AUTH",
    "huge": "DISC-TOO-LARGE",
}


@pytest.mark.parametrize(("variant", "code"), sorted(VARIANTS.items()))
def test_validation_failure_is_named(app, variant, code):
    body = cerner_body(app, fhir_base_url=app.sandbox.variant_base(variant))
    resp = create(app, body)
    assert resp.status_code == 201, resp.text  # accepted and kept, marked invalid
    data = resp.json()
    assert data["status"] == "invalid"
    assert code in [p["code"] for p in data["validation"]["problems"]], data["validation"]


def test_dstu2_base_is_refused(app):
    body = cerner_body(app, fhir_base_url=app.sandbox.ehr_base("epic", dstu2=True))
    data = create(app, body).json()
    assert "DISC-FHIR-VERSION" in [p["code"] for p in data["validation"]["problems"]]


def test_unreachable_server(app):
    body = cerner_body(app, fhir_base_url="https://127.0.0.1:9/fhir")
    data = create(app, body).json()
    assert data["validation"]["problems"][0]["code"] == "DISC-UNREACHABLE"


@pytest.mark.parametrize(
    "name",
    ["ENTRA_CLIENT_SECRET", "CONNECTOR_SIGNING_KEYS", "CONNECTOR_HASH_KEY", "AzureWebJobsStorage",
     "EHR_SECRET_", "ehr_secret_epic", "NO_SUCH_SETTING"],
)  # fmt: skip
def test_only_ehr_secret_settings_can_be_named(app, fresh, name):
    """The connector's own secrets can never be sent to an EHR: refused before anything else."""
    body = cerner_body(app, client_auth={"method": "client_secret_basic", "secret_setting": name})
    resp = create(app, body)
    assert resp.status_code == 422 and resp.json()["code"] == "REQ-VALIDATION"
    assert [e["field"] for e in resp.json()["errors"]] == [
        "client_auth.client_secret_basic.secret_setting"
    ]


def test_validation_does_not_say_whether_a_setting_exists(app, fresh):
    real = create(app, cerner_body(app)).json()
    delete_all_with_base(app, app.sandbox.ehr_base("cerner"))
    made_up = cerner_body(
        app, client_auth={"method": "client_secret_basic", "secret_setting": "EHR_SECRET_NOPE"}
    )
    ghost = create(app, made_up).json()
    assert real["status"] == ghost["status"] == "active"
    assert real["validation"]["problems"] == ghost["validation"]["problems"] == []


# --- bad input -----------------------------------------------------------------------------
def test_field_errors_are_listed(app):
    bad = {"fhir_base_url": "ftp://x", "vendor": "meditech", "environment": "test",
           "organization": "", "client_id": "a", "client_auth": {"method": "magic"},
           "surprise": 1}  # fmt: skip
    resp = create(app, bad)
    assert resp.status_code == 422 and resp.headers["Content-Type"] == "application/problem+json"
    fields = {e["field"] for e in resp.json()["errors"]}
    assert {"fhir_base_url", "vendor", "organization", "client_auth", "surprise"} <= fields
    assert "ftp://x" not in resp.text  # inputs are never echoed


def test_epic_without_approver(app, approver):
    body = epic_body(app, approver)
    body["approver"] = None
    resp = create(app, body)
    assert resp.status_code == 422 and resp.json()["code"] == "CFG-APPROVER-REQUIRED"


def test_an_epic_endpoints_approver_can_be_replaced_not_removed(app, approver, fresh):
    """`approver: null` is a valid patch (a Cerner endpoint's approver goes); an Epic endpoint's
    state refuses it: 409, as schema-valid data may meet (the OpenAPI contract test's rule)."""
    body = epic_body(app, approver)
    made = create(app, body)
    url = app.api(f"config/endpoints/{body['id']}")
    s = app.session("admin")
    gone = s.patch(url, json={"approver": None}, headers={"If-Match": made.headers["ETag"]})
    assert gone.status_code == 409 and gone.json()["code"] == "CFG-APPROVER-NOT-REMOVABLE"
    assert s.get(url).json()["approver"] == approver
    other = {"oid": "00000000-0000-4000-8000-0000000000a2", "display_name": "Another Analyst"}
    replaced = s.patch(url, json={"approver": other}, headers={"If-Match": made.headers["ETag"]})
    assert replaced.status_code == 200 and replaced.json()["approver"] == other

    cerner = cerner_body(app, approver=approver)
    made = create(app, cerner)
    url = app.api(f"config/endpoints/{cerner['id']}")
    removed = s.patch(url, json={"approver": None}, headers={"If-Match": made.headers["ETag"]})
    assert removed.status_code == 200 and removed.json()["approver"] is None


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "REQ-BAD-JSON"),
        (b"[1, 2]", "application/json", 422, "REQ-VALIDATION"),
        (b"{}", "text/plain", 415, "REQ-UNSUPPORTED-MEDIA"),
        (b'{"a": "' + b"x" * 70_000 + b'"}', "application/json", 413, "REQ-TOO-LARGE"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", 400, "REQ-BAD-JSON"),  # parser limit
        (b'{"launch": ' * 40 + b"1" + b"}" * 40, "application/json", 400, "REQ-BAD-JSON"),
    ],
)
def test_bodies_we_cannot_read(app, data, ctype, status, code):
    resp = app.session("admin").post(
        app.api("config/endpoints"), data=data, headers={"Content-Type": ctype}
    )
    assert resp.status_code == status and resp.json()["code"] == code


def test_unknown_endpoint_and_method(app):
    s = app.session("reader")
    assert s.get(app.api("config/endpoints/nope")).json()["code"] == "CFG-ENDPOINT-NOT-FOUND"
    assert s.put(app.api("config/endpoints/nope"), json={}).status_code == 405


def test_secrets_never_appear_in_answers_or_logs(app, approver, fresh):
    seen = []
    s = app.session("admin")
    seen.append(create(app, cerner_body(app)).text)
    body = epic_body(app, approver)
    seen.append(create(app, body).text)
    approve(app, body["id"])
    seen.append(s.get(app.api("config/endpoints")).text)
    seen.append(s.get(app.api(f"config/endpoints/{body['id']}/integration-records")).text)
    seen.append(app.session("reader").get(app.api("config/audit")).text)
    everything = "\n".join(seen) + app.host.log()
    for secret in (EPIC_SECRET, CERNER_SECRET, "BEGIN PRIVATE KEY"):
        assert secret not in everything
    assert "eyJ" not in app.host.log()  # no token of any kind in the host's log


def test_openapi_and_jwks_are_public(app):
    doc = app.session().get(app.api("openapi.json")).json()
    assert doc["openapi"].startswith("3.1") and "/config/endpoints" in doc["paths"]
    jwks = app.session().get(app.api(".well-known/jwks.json"))
    assert jwks.headers["Cache-Control"] == "public, max-age=3600"
    keys = jwks.json()["keys"]
    assert {k["alg"] for k in keys} == {"RS384", "ES384"}
    assert all("d" not in k and "p" not in k for k in keys)


def test_401_and_403_over_http(app):
    url = app.api("config/endpoints")
    anonymous = app.session().get(url)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "AUTH-MISSING-TOKEN"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.headers["Content-Type"] == "application/problem+json"
    expired = app.sandbox.entra.mint(roles=["Connector.Reader"], user="reader", expires_in=-3600)
    late = app.session().get(url, headers={"Authorization": f"Bearer {expired}"})
    assert late.status_code == 401 and late.json()["code"] == "AUTH-EXPIRED-TOKEN"
    reader = app.session("reader").post(url, json={})
    assert reader.status_code == 403 and reader.json()["code"] == "AUTH-FORBIDDEN-ROLE"


def test_a_secret_goes_only_to_the_token_host_it_was_bound_to(app, fresh):
    """An admin points an endpoint at another server with a bound secret: it stays invalid, no
    token request carries the secret, until a second person (an approver) approves that host."""
    create(app, cerner_body(app))  # EHR_SECRET_CERNER: bound to the Cerner-like token host
    bound = app.session("reader").get(app.api("config/secrets/EHR_SECRET_CERNER")).json()
    moved = app.sandbox.variant_base("moved-hosts", vendor="cerner")  # token host: localhost
    before = len(app.sandbox.journal.entries(path="*/token"))
    elsewhere = create(app, cerner_body(app, fhir_base_url=moved)).json()
    assert elsewhere["status"] == "invalid"
    problems = [p["code"] for p in elsewhere["validation"]["problems"]]
    assert problems == ["CFG-SECRET-HOST-UNAPPROVED"]
    new_host = elsewhere["validation"]["pinned_hosts"]["token"]
    assert new_host not in bound["hosts"]
    assert len(app.sandbox.journal.entries(path="*/token")) == before  # nothing was sent
    url = app.api("config/secrets/EHR_SECRET_CERNER/hosts")
    pending = app.session("reader").get(app.api("config/secrets/EHR_SECRET_CERNER")).json()
    assert {"host": new_host, "asked_by": elsewhere["updated_by"]} in pending["pending"]
    # the admin who asked cannot approve it, even holding the Approver role
    same = app.session("approver", user="admin").post(url, json={"host": new_host})
    assert same.status_code == 403 and same.json()["code"] == "CFG-SECOND-PERSON-REQUIRED"
    assert app.session("admin").post(url, json={"host": new_host}).status_code == 403
    ok = app.session("approver").post(url, json={"host": new_host})
    assert ok.status_code == 200 and new_host in ok.json()["hosts"]
    again = app.session("admin").post(app.api(f"config/endpoints/{elsewhere['id']}/validate"))
    assert again.json()["status"] == "active"
    audit = app.session("reader").get(
        app.api("config/audit"), params={"action": "secret.host.approve"}
    )
    assert audit.json()["items"][0]["target"] == "secret:EHR_SECRET_CERNER"
