"""The Epic-like and Cerner-like EHR stand-ins, driven with plain requests as our SMART client
will drive them: discovery, the misbehaving variants, EHR and standalone launches, client
authentication (client_secret_basic, private_key_jwt), id_tokens, FHIR reads, quirks, controls."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import ssl
import time
import uuid
from urllib.parse import parse_qs, parse_qsl, quote_plus, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dev.sandbox import start_sandbox
from dev.sandbox.ehr.cerner import TENANT
from dev.sandbox.ehr.data import today
from dev.sandbox.ehr.variants import VARIANTS
from tests.plugins.sandbox import ehr_sign_in

PROVIDER_SCOPE = (
    "launch openid fhirUser user/Patient.read user/Practitioner.read user/Appointment.read "
    "user/Encounter.read"
)
PATIENT_SCOPE = "launch openid fhirUser patient/Patient.read patient/Appointment.read"
VENDORS = ["epic", "cerner"]


# -- helpers ------------------------------------------------------------------------------------
# The preloaded clients follow the sandbox settings or configure_connector (the app's e2e
# fixture points them at its random port): read the redirect URI and secret, never assume them.
def redirect_of(ehr) -> str:
    return ehr.connector.redirect_uris[0]


def secret_of(ehr) -> str:
    return ehr.connector.secret


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 2.3.1: form-urlencode both halves, then base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def control(http, sandbox, vendor: str, path: str, body: dict | None = None) -> dict:
    url = f"{sandbox.url}/_sandbox/{vendor}{path}"
    answer = http.get(url) if body is None else http.post(url, json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


class Flow:
    """One SMART authorization as our app runs it: params, PKCE, state, nonce."""

    def __init__(self, ehr, scope: str = PROVIDER_SCOPE, launch: str | None = None, **extra):
        self.ehr = ehr
        self.verifier, challenge = pkce_pair()
        self.state = secrets.token_urlsafe(24)
        self.nonce = secrets.token_urlsafe(16)
        self.client_id = extra.pop("client_id", f"evc-{ehr.name}-test")
        self.redirect = extra.pop("redirect_uri", None) or redirect_of(ehr)
        self.params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect,
            "scope": scope,
            "state": self.state,
            "aud": ehr.fhir_base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "nonce": self.nonce,
        }
        if launch:
            self.params["launch"] = launch
        self.params.update({k: v for k, v in extra.items() if v is not None})
        for k in [k for k, v in extra.items() if v is None]:
            self.params.pop(k, None)

    @property
    def url(self) -> str:
        return f"{self.ehr.authorize_url}?{urlencode(self.params)}"

    def authorize(self, http, post: bool = False, url: str | None = None) -> dict[str, str]:
        """The callback parameters (code or error) of a redirecting authorize."""
        target = url or self.ehr.authorize_url
        if post:
            answer = http.post(target, data=self.params, allow_redirects=False)
        else:
            answer = http.get(f"{target}?{urlencode(self.params)}", allow_redirects=False)
        assert answer.status_code == 302, f"{answer.status_code}: {answer.text[:300]}"
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == self.redirect
        return {k: v[0] for k, v in parse_qs(location.query).items()}

    def redeem(self, http, code: str, secret: str | None = None, **form) -> requests.Response:
        token_url = form.pop("token_url", None) or self.ehr.token_url
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect,
            "code_verifier": self.verifier,
            **form,
        }
        headers = {}
        if "client_assertion" not in form:
            headers["Authorization"] = basic(self.client_id, secret or secret_of(self.ehr))
        return http.post(token_url, data=data, headers=headers)


def verify_id_token(sandbox, http, token: str, client_id: str) -> dict:
    """As the app will: the issuer's openid-configuration -> jwks_uri -> RS256, aud, exp."""
    issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
    config = http.get(issuer.rstrip("/") + "/.well-known/openid-configuration").json()
    assert config["issuer"] == issuer
    ctx = ssl.create_default_context(cafile=str(sandbox.ca_file))
    key = jwt.PyJWKClient(config["jwks_uri"], ssl_context=ctx).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=client_id,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def launch_token(http, sandbox, vendor: str, **body) -> dict:
    return control(http, sandbox, vendor, "/launch", body)


def new_key(kind: str) -> tuple[object, dict, str]:
    """(private key, public JWK with kid, alg) for RS384 or ES384."""
    if kind == "RS384":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ec.generate_private_key(ec.SECP384R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": uuid.uuid4().hex, "alg": kind, "use": "sig"})
    return private, jwk, kind


def assertion(key, jwk: dict, alg: str, client_id: str, token_url: str, **overrides) -> str:
    """A SMART client assertion; an override of None leaves that claim out."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": jwk["kid"], "typ": "JWT"}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


@pytest.fixture(params=VENDORS)
def ehr(request, clean_sandbox):
    return clean_sandbox.stand_ins[request.param]


# -- discovery ----------------------------------------------------------------------------------
def test_smart_configuration_per_vendor(sandbox, sandbox_http):
    base = sandbox.epic.origin  # each EHR on its own origin
    epic = sandbox_http.get(f"{base}/epic/api/FHIR/R4/.well-known/smart-configuration")
    assert epic.status_code == 200 and epic.headers["Content-Type"].startswith("application/json")
    e = epic.json()
    assert e["issuer"] == f"{base}/epic/oauth2"
    assert e["authorization_endpoint"] == f"{base}/epic/oauth2/authorize"
    assert e["token_endpoint"] == f"{base}/epic/oauth2/token"
    assert "permission-v1" in e["capabilities"] and "permission-v2" not in e["capabilities"]
    assert "user/Appointment.read" in e["scopes_supported"]
    assert "authorization_response_iss_parameter_supported" not in e

    base = sandbox.cerner.origin
    cerner_base = f"{base}/cerner/r4/{TENANT}"
    c = sandbox_http.get(f"{cerner_base}/.well-known/smart-configuration").json()
    smart_v1 = f"{base}/cerner/tenants/{TENANT}/protocols/oauth2/profiles/smart-v1"
    assert c["authorization_endpoint"] == f"{smart_v1}/personas/provider/authorize"
    assert c["token_endpoint"] == f"{smart_v1}/token"
    assert c["jwks_uri"] == f"{base}/cerner/jwk"
    assert c["issuer"] == f"{base}/cerner/tenants/{TENANT}/oidc/idsps/{TENANT}/"
    assert {"permission-v1", "permission-v2"} <= set(c["capabilities"])
    assert c["authorization_response_iss_parameter_supported"] is True

    for doc in (e, c):
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["token_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "private_key_jwt",
        ]
        assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
        assert {"authorization_code", "client_credentials"} <= set(doc["grant_types_supported"])
        assert doc["response_types_supported"] == ["code"]
        for cap in (
            "launch-ehr",
            "launch-standalone",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-ehr-patient",
            "context-ehr-encounter",
            "sso-openid-connect",
        ):
            assert cap in doc["capabilities"]


@pytest.mark.parametrize("vendor", VENDORS)
def test_metadata_and_openid_configuration(sandbox, sandbox_http, vendor):
    ehr = sandbox.stand_ins[vendor]
    answer = sandbox_http.get(f"{ehr.fhir_base}/metadata")
    assert answer.headers["Content-Type"].startswith("application/fhir+json")
    cap = answer.json()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    (ext,) = cap["rest"][0]["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris == {"authorize": ehr.authorize_url, "token": ehr.token_url}

    config = sandbox_http.get(ehr.issuer.rstrip("/") + "/.well-known/openid-configuration").json()
    assert config["issuer"] == ehr.issuer and config["jwks_uri"] == ehr.jwks_uri
    keys = sandbox_http.get(ehr.jwks_uri).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["kid"] and k["alg"] == "RS256" for k in keys)


def test_epic_dstu2_base(sandbox, sandbox_http):
    base = sandbox.epic.dstu2_base
    assert base == f"{sandbox.epic.origin}/epic/api/FHIR/DSTU2"
    conformance = sandbox_http.get(f"{base}/metadata").json()
    assert conformance["resourceType"] == "Conformance"
    assert conformance["fhirVersion"] == "1.0.2"
    smart = sandbox_http.get(f"{base}/.well-known/smart-configuration").json()
    assert smart["token_endpoint"] == sandbox.epic.token_url


# -- variants -----------------------------------------------------------------------------------
def smart_doc(http, base: str, **kw) -> requests.Response:
    return http.get(f"{base}/.well-known/smart-configuration", allow_redirects=False, **kw)


@pytest.mark.parametrize("vendor", VENDORS)
def test_variants_edit_discovery(sandbox, sandbox_http, vendor):
    ehr = sandbox.stand_ins[vendor]
    normal = smart_doc(sandbox_http, ehr.fhir_base).json()

    def doc(kind: str) -> dict:
        answer = smart_doc(sandbox_http, ehr.variant_base(kind))
        assert answer.status_code == 200, kind
        return answer.json()

    assert "code_challenge_methods_supported" not in doc("no-s256")
    assert doc("plain")["code_challenge_methods_supported"] == ["S256", "plain"]
    assert "token_endpoint" not in doc("no-token-endpoint")
    assert "authorization_endpoint" not in doc("no-authorize-endpoint")
    no_openid = doc("no-openid")
    assert "sso-openid-connect" not in no_openid["capabilities"]
    assert "openid" not in no_openid["scopes_supported"]
    assert "issuer" not in no_openid and "jwks_uri" not in no_openid
    assert doc("no-auth-methods")["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    moved = doc("moved-hosts")
    assert urlsplit(moved["authorization_endpoint"]).hostname == "localhost"
    assert urlsplit(moved["token_endpoint"]).hostname == "localhost"
    assert moved["issuer"] == normal["issuer"]

    # The metadata's oauth-uris follow the edited document.
    cap = sandbox_http.get(f"{ehr.variant_base('no-token-endpoint')}/metadata").json()
    names = [e["url"] for e in cap["rest"][0]["security"]["extension"][0]["extension"]]
    assert names == ["authorize"]


def test_variants_that_break_the_answer(sandbox, sandbox_http):
    epic = sandbox.epic
    page = smart_doc(sandbox_http, epic.variant_base("not-json"))
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert smart_doc(sandbox_http, epic.variant_base("http-500")).status_code == 500
    assert sandbox_http.get(f"{epic.variant_base('http-500')}/metadata").status_code == 500

    moved = smart_doc(sandbox_http, epic.variant_base("redirect-other-host"))
    assert moved.status_code == 302
    target = moved.headers["Location"]
    assert target == epic.smart_configuration_url.replace(
        epic.origin, sandbox.url.replace("127.0.0.1", "localhost")
    )  # the other host name: localhost on the control origin's port
    assert sandbox_http.get(target).json()["issuer"] == epic.issuer  # the cert covers localhost

    huge = smart_doc(sandbox_http, sandbox.cerner.variant_base("huge"))
    assert len(huge.content) >= 2 * 1024 * 1024 and isinstance(huge.json(), dict)

    unknown = smart_doc(sandbox_http, epic.variant_base("plain").replace("plain", "nope"))
    assert unknown.status_code == 404
    assert set(VARIANTS) == set(
        sandbox_http.get(f"{sandbox.url}/_sandbox/epic/").json()["variants"]
    )


def test_slow_variant(clean_sandbox, sandbox_http):
    epic = clean_sandbox.epic
    epic.set_quirks(slow_seconds=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        smart_doc(sandbox_http, epic.variant_base("slow"), timeout=0.2)
    started = time.perf_counter()
    answer = smart_doc(sandbox_http, epic.variant_base("slow"))
    assert answer.status_code == 200 and time.perf_counter() - started >= 0.6
    assert answer.json()["code_challenge_methods_supported"] == ["S256"]  # valid, only slow


def test_moved_hosts_switch_and_launch_over_localhost(clean_sandbox, sandbox_http):
    """Flip the normal base's advertised hosts at runtime; the EHR still answers on them."""
    sandbox, epic = clean_sandbox, clean_sandbox.epic
    control(sandbox_http, sandbox, "epic", "/quirks", {"advertised_host": "localhost"})
    doc = smart_doc(sandbox_http, epic.fhir_base).json()
    authorize, token = doc["authorization_endpoint"], doc["token_endpoint"]
    assert urlsplit(authorize).hostname == urlsplit(token).hostname == "localhost"
    cap = sandbox_http.get(f"{epic.fhir_base}/metadata").json()
    assert cap["rest"][0]["security"]["extension"][0]["extension"][1]["valueUri"] == token

    flow = Flow(epic, launch=launch_token(sandbox_http, sandbox, "epic")["launch"])
    result = flow.authorize(sandbox_http, post=True, url=authorize)
    answer = flow.redeem(sandbox_http, result["code"], token_url=token)
    assert answer.status_code == 200, answer.text

    sandbox.reset()
    assert smart_doc(sandbox_http, epic.fhir_base).json()["token_endpoint"] == epic.token_url


# -- EHR launch end to end ----------------------------------------------------------------------
def test_provider_launch_end_to_end(ehr, clean_sandbox, sandbox_http):
    vendor = ehr.name
    minted = control(sandbox_http, clean_sandbox, vendor, "/launch", {"clinician": "reyes"})
    launch_url = urlsplit(minted["launch_url"])
    assert minted["launch_url"].startswith(ehr.launch_urls["provider"] + "?")
    assert launch_url.path.endswith(f"/{vendor}-sandbox-test/provider")
    query = parse_qs(launch_url.query)
    assert query["iss"] == [ehr.fhir_base] and query["launch"] == [minted["launch"]]

    flow = Flow(ehr, launch=minted["launch"])
    result = flow.authorize(sandbox_http, post=(vendor == "epic"))  # Epic prefers POST
    assert result["state"] == flow.state and result["code"]
    if vendor == "cerner":
        assert result["iss"] == ehr.issuer  # RFC 9207, on for Cerner
    else:
        assert "iss" not in result

    answer = flow.redeem(sandbox_http, result["code"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["scope"] == PROVIDER_SCOPE
    assert body["patient"] == minted["patient"] and body["encounter"] == minted["encounter"]
    if vendor == "epic":
        assert body["expires_in"] == 3600
        assert body["appointment"] == minted["appointment"]
        assert body["need_patient_banner"] == "false"  # a string, as Epic sends it
        assert body["epicUserID"] == "AREYES" and body["loginDepartment"] == "10501101"
        assert body["location"] and body["__epic.dstu2.patient"]
    else:
        assert body["expires_in"] == 570 and body["tenant"] == TENANT
        assert body["need_patient_banner"] is False
        assert body["fhirContext"] == [{"reference": f"Appointment/{minted['appointment']}"}]
        assert body["user"] == minted["practitioner"] and body["username"] == "AR012742"
        assert "appointment" not in body
    assert body["smart_style_url"].startswith(ehr.origin)
    assert sandbox_http.get(body["smart_style_url"]).json()["color_background"]

    claims = verify_id_token(clean_sandbox, sandbox_http, body["id_token"], flow.client_id)
    assert claims["iss"] == ehr.issuer and claims["nonce"] == flow.nonce
    assert claims["fhirUser"] == f"{ehr.fhir_base}/Practitioner/{minted['practitioner']}"
    assert jwt.get_unverified_header(body["id_token"])["kid"]

    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    for path, rid in (
        ("Patient", minted["patient"]),
        ("Practitioner", minted["practitioner"]),
        ("Appointment", minted["appointment"]),
        ("Encounter", minted["encounter"]),
    ):
        read = sandbox_http.get(f"{ehr.fhir_base}/{path}/{rid}", headers=bearer)
        assert read.status_code == 200, read.text
        assert read.headers["Content-Type"].startswith("application/fhir+json")
        assert read.json()["resourceType"] == path and read.json()["id"] == rid
    appt = sandbox_http.get(
        f"{ehr.fhir_base}/Appointment/{minted['appointment']}", headers=bearer
    ).json()
    assert appt["status"] == "booked" and appt["start"].startswith(today().isoformat())
    actors = [p["actor"]["reference"] for p in appt["participant"]]
    assert f"Practitioner/{minted['practitioner']}" in actors
    assert f"Patient/{minted['patient']}" in actors

    search = sandbox_http.get(
        f"{ehr.fhir_base}/Appointment",
        params={"date": today().isoformat(), "practitioner": minted["practitioner"]},
        headers=bearer,
    ).json()
    assert search["resourceType"] == "Bundle" and search["total"] == 2
    assert minted["appointment"] in [e["resource"]["id"] for e in search["entry"]]

    assert sandbox_http.get(f"{ehr.fhir_base}/Patient/{minted['patient']}").status_code == 401
    # The launch token was single use.
    again = Flow(ehr, launch=minted["launch"]).authorize(sandbox_http)
    assert again["error"] == "invalid_request"


@pytest.mark.parametrize("vendor", VENDORS)
def test_patient_launch_from_the_portal(clean_sandbox, sandbox_http, vendor):
    ehr = clean_sandbox.stand_ins[vendor]
    portal = sandbox_http.get(ehr.portal_url, params={"patient": "haddad"})
    assert portal.status_code == 200 and "Omar Haddad" in portal.text
    appointment = ehr.chart.id_of(ehr.chart.slots(patient="haddad")[0])
    assert f"data-testid='begin-{appointment}'" in portal.text

    clicked = sandbox_http.post(
        ehr.portal_url,
        data={"patient": "haddad", "appointment": appointment},
        allow_redirects=False,
    )
    assert clicked.status_code == 303
    target = urlsplit(clicked.headers["Location"])
    assert clicked.headers["Location"].startswith(ehr.launch_urls["patient"] + "?iss=")
    assert target.path.endswith(f"/{vendor}-sandbox-test/patient")
    launch = parse_qs(target.query)["launch"][0]

    flow = Flow(ehr, scope=PATIENT_SCOPE, launch=launch)
    body = flow.redeem(sandbox_http, flow.authorize(sandbox_http)["code"]).json()
    patient_id = ehr.chart.id_of(ehr.chart.patient("haddad"))
    assert body["patient"] == patient_id
    claims = verify_id_token(clean_sandbox, sandbox_http, body["id_token"], flow.client_id)
    assert claims["fhirUser"] == f"{ehr.fhir_base}/Patient/{patient_id}"
    reads = sandbox_http.get(
        f"{ehr.fhir_base}/Appointment/{appointment}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert reads.status_code == 200
    practitioner = sandbox_http.get(
        f"{ehr.fhir_base}/Practitioner/{ehr.chart.id_of(ehr.chart.clinician('okafor'))}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert practitioner.status_code == 403  # no Practitioner scope granted


def test_schedule_page_begins_a_visit(clean_sandbox, sandbox_http):
    epic = clean_sandbox.epic
    page = sandbox_http.get(epic.schedule_url, params={"clinician": "okafor"})
    assert (
        page.status_code == 200 and "Dr. Chidi Okafor" in page.text and "Omar Haddad" in page.text
    )
    assert "data-testid='clinician-lindqvist'" in page.text
    slot = epic.chart.slots(clinician="okafor")[0]
    appointment = epic.chart.id_of(slot)
    assert f"data-testid='connection-{appointment}'" in page.text  # the write-back spot
    epic.connection_status[appointment] = "Patient connected 10:02"
    assert (
        "Patient connected 10:02" in sandbox_http.get(epic.schedule_url + "?clinician=okafor").text
    )
    # One inline script (the live write-back status), nothing fetched from elsewhere.
    assert page.text.count("<script") == 1 and " src=" not in page.text and "<link" not in page.text
    live = sandbox_http.get(epic.schedule_url + "/status.json")
    assert live.json() == {appointment: "Patient connected 10:02"}

    clicked = sandbox_http.post(
        epic.schedule_url,
        data={"clinician": "okafor", "appointment": appointment},
        allow_redirects=False,
    )
    assert clicked.status_code == 303
    location = clicked.headers["Location"]
    assert location.startswith(epic.launch_urls["provider"] + "?iss=")
    query = parse_qs(urlsplit(location).query)
    assert query["iss"] == [epic.fhir_base]
    flow = Flow(epic, launch=query["launch"][0])
    body = flow.redeem(sandbox_http, flow.authorize(sandbox_http)["code"]).json()
    assert body["appointment"] == appointment and body["epicUserID"] == "COKAFOR"


def test_settings_and_configure_connector(tmp_path):
    """Preloaded clients and launch URLs come from settings; configure_connector (what the app's
    e2e fixture calls with its random port) moves that baseline, and reset keeps it."""
    custom = "http://127.0.0.1:5999/api/launch/epic-x/provider"
    settings = {
        "EPIC_PROVIDER_LAUNCH_URL": custom,
        "EHR_SECRET_EPIC": "from-settings",
        "CONNECTOR_REDIRECT_URI": "http://127.0.0.1:5999/cb, http://127.0.0.1:5999/cb2",
    }
    with start_sandbox(state_dir=tmp_path, stand_ins=["epic", "cerner"], settings=settings) as box:
        http = requests.Session()
        http.trust_env, http.verify = False, str(box.ca_file)
        epic = box.epic
        assert epic.mint_launch().url.startswith(custom + "?iss=")
        assert epic.clients.get("evc-epic-test").secret == "from-settings"
        assert epic.clients.get("evc-epic-jwt").redirect_uris == [
            "http://127.0.0.1:5999/cb",
            "http://127.0.0.1:5999/cb2",
        ]
        changed = control(
            http, box, "epic", "/settings", {"patient_launch_url": "https://app.test/p?x=1"}
        )
        assert changed["provider_launch_url"] == custom
        patient = epic.mint_launch("patient", patient="rivera")
        assert patient.url.startswith("https://app.test/p?x=1&iss=")
        box.reset()
        assert epic.launch_urls["patient"].endswith("/epic-sandbox-test/patient")

        app = "http://127.0.0.1:6123"
        box.configure_connector(
            redirect_uri=f"{app}/api/launch/callback",
            jwks_url=f"{app}/api/.well-known/jwks.json",
            launch_base=f"{app}/api/launch",
            epic_secret="e-secret",
            cerner_secret="c-secret",
        )
        box.reset()
        assert epic.launch_urls["provider"] == f"{app}/api/launch/epic-sandbox-test/provider"
        assert box.cerner.launch_urls["patient"] == f"{app}/api/launch/cerner-sandbox-test/patient"
        assert box.cerner.clients.get("evc-cerner-test").secret == "c-secret"
        jwt_client = epic.clients.get("evc-epic-jwt")
        assert jwt_client.jwks_url == f"{app}/api/.well-known/jwks.json"
        assert jwt_client.redirect_uris == [f"{app}/api/launch/callback"]
        over_http = http.post(f"{box.url}/_sandbox/connector", json={"epic_secret": "again"})
        assert over_http.status_code == 200
        assert epic.clients.get("evc-epic-test").secret == "again"
        assert http.post(f"{box.url}/_sandbox/connector", json={}).status_code == 400


# -- client authentication ----------------------------------------------------------------------
@pytest.mark.parametrize(("vendor", "alg"), [("epic", "RS384"), ("cerner", "ES384")])
def test_private_key_jwt_is_verified_against_the_clients_jwks(
    clean_sandbox, sandbox_http, jwks_server, vendor, alg
):
    ehr = clean_sandbox.stand_ins[vendor]
    key, jwk, alg = new_key(alg)
    jwks_server.jwks = {"keys": [jwk]}
    client_id = f"evc-{vendor}-jwt"
    ehr.update_client(client_id, jwks_url=jwks_server.url)

    def attempt(**overrides) -> requests.Response:
        launch = ehr.mint_launch().token
        flow = Flow(ehr, launch=launch, client_id=client_id)
        code = flow.authorize(sandbox_http)["code"]
        token = overrides.pop("_assertion", None) or assertion(
            overrides.pop("_key", key), jwk, alg, client_id, ehr.token_url, **overrides
        )
        return flow.redeem(
            sandbox_http,
            code,
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=token,
        )

    ok = attempt()
    assert ok.status_code == 200, ok.text
    assert ok.json()["patient"]

    stranger = new_key(alg)[0]
    refusals = {
        "bad signature": attempt(_key=stranger),
        "wrong aud": attempt(aud=ehr.fhir_base),
        "expired": attempt(iat=int(time.time()) - 600, exp=int(time.time()) - 300),
        "exp too far": attempt(exp=int(time.time()) + 3600),
        "iss differs": attempt(iss="someone-else"),
        "no jti": attempt(jti=None),
        "sub differs": attempt(sub="someone-else"),
    }
    used = assertion(key, jwk, alg, client_id, ehr.token_url)
    assert attempt(_assertion=used).status_code == 200
    refusals["reused jti"] = attempt(_assertion=used)
    for why, answer in refusals.items():
        assert answer.status_code == 401, why
        assert answer.json()["error"] == "invalid_client", why
    assert "jti" in refusals["reused jti"].json()["error_description"]
    assert jwks_server.hits >= 1


def test_private_key_jwt_key_lookup(clean_sandbox, sandbox_http, jwks_server):
    epic = clean_sandbox.epic
    key, jwk, alg = new_key("RS384")
    jwks_server.jwks = {"keys": []}
    epic.update_client("evc-epic-jwt", jwks_url=jwks_server.url)

    def backend(token: str) -> requests.Response:
        return sandbox_http.post(
            epic.token_url,
            data={
                "grant_type": "client_credentials",
                "scope": "system/Appointment.read",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": token,
            },
        )

    missing = backend(assertion(key, jwk, alg, "evc-epic-jwt", epic.token_url))
    assert missing.status_code == 401 and "No key" in missing.json()["error_description"]
    jwks_server.jwks = {"keys": [jwk]}  # published later: an unknown kid re-fetches the JWKS
    assert backend(assertion(key, jwk, alg, "evc-epic-jwt", epic.token_url)).status_code == 200
    no_kid = jwt.encode(
        {
            "iss": "evc-epic-jwt",
            "sub": "evc-epic-jwt",
            "aud": epic.token_url,
            "exp": int(time.time()) + 60,
            "jti": uuid.uuid4().hex,
        },
        key,
        algorithm="RS384",
    )
    assert backend(no_kid).json()["error_description"].endswith("no kid header.")
    rs256 = jwt.encode(
        {"iss": "evc-epic-jwt", "sub": "evc-epic-jwt", "aud": epic.token_url, "exp": 1},
        key,
        algorithm="RS256",
        headers={"kid": jwk["kid"]},
    )
    assert backend(rs256).status_code == 401


def test_backend_services_client_credentials(clean_sandbox, sandbox_http, jwks_server):
    cerner = clean_sandbox.cerner
    key, jwk, alg = new_key("ES384")
    jwks_server.jwks = {"keys": [jwk]}
    cerner.update_client("evc-cerner-jwt", jwks_url=jwks_server.url)

    def ask(scope: str) -> requests.Response:
        return sandbox_http.post(
            cerner.token_url,
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion(key, jwk, alg, "evc-cerner-jwt", cerner.token_url),
            },
        )

    ok = ask("system/Appointment.rs system/Appointment.u")
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert (
        body["expires_in"] <= 300 and body["scope"] == "system/Appointment.rs system/Appointment.u"
    )
    assert "id_token" not in body and "patient" not in body
    appointment = cerner.chart.id_of(cerner.chart.slots()[0])
    read = sandbox_http.get(
        f"{cerner.fhir_base}/Appointment/{appointment}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert read.status_code == 200
    assert ask("user/Appointment.read").json()["error"] == "invalid_scope"

    secret_client = sandbox_http.post(
        cerner.token_url,
        data={"grant_type": "client_credentials", "scope": "system/Appointment.rs"},
        headers={"Authorization": basic("evc-cerner-test", secret_of(cerner))},
    )
    assert secret_client.json()["error"] == "unauthorized_client"


def test_client_secret_basic_checks(ehr, sandbox_http):
    def redeem(secret: str | None = None, **kw) -> requests.Response:
        flow = Flow(ehr, launch=ehr.mint_launch().token)
        code = flow.authorize(sandbox_http)["code"]
        return flow.redeem(sandbox_http, code, secret=secret, **kw)

    wrong = redeem("not-the-secret")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    if ehr.name == "cerner":
        assert wrong.json()["error_uri"].startswith(ehr.url("/oauth2-errors"))

    flow = Flow(ehr, launch=ehr.mint_launch().token)
    code = flow.authorize(sandbox_http)["code"]
    posted = sandbox_http.post(
        ehr.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.redirect,
            "code_verifier": flow.verifier,
            "client_id": flow.client_id,
            "client_secret": secret_of(ehr),
        },
    )
    assert posted.status_code == 401 and "client_secret_post" in posted.json()["error_description"]

    # RFC 6749: both halves are form-urlencoded inside Basic.
    ehr.register_client(
        client_id="odd id",
        auth_method="client_secret_basic",
        secret="s3cr:et+/=%",
        redirect_uris=[redirect_of(ehr)],
        scopes=PROVIDER_SCOPE.split(),
    )
    odd = Flow(ehr, launch=ehr.mint_launch().token, client_id="odd id")
    answer = odd.redeem(sandbox_http, odd.authorize(sandbox_http)["code"], secret="s3cr:et+/=%")
    assert answer.status_code == 200, answer.text


# -- code, PKCE, redirect, aud ------------------------------------------------------------------
def test_code_is_bound_and_single_use(ehr, sandbox_http):
    flow = Flow(ehr, launch=ehr.mint_launch().token)
    code = flow.authorize(sandbox_http)["code"]

    mismatch = flow.redeem(sandbox_http, code, code_verifier=pkce_pair()[0])
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_grant"
    no_verifier = flow.redeem(sandbox_http, code, code_verifier="")
    assert no_verifier.json()["error"] == "invalid_request"
    other_redirect = flow.redeem(sandbox_http, code, redirect_uri=flow.redirect + "/")
    assert other_redirect.json()["error"] == "invalid_grant"
    other_client = sandbox_http.post(
        ehr.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.redirect,
            "code_verifier": flow.verifier,
        },
        headers={"Authorization": basic("evc-x", "y")},
    )
    assert other_client.json()["error"] == "invalid_client"

    assert flow.redeem(sandbox_http, code).status_code == 200
    reused = flow.redeem(sandbox_http, code)
    assert reused.status_code == 400 and "already used" in reused.json()["error_description"]

    ehr.code_lifetime = -1  # restored by reset
    late = Flow(ehr, launch=ehr.mint_launch().token)
    expired = late.redeem(sandbox_http, late.authorize(sandbox_http)["code"])
    assert expired.json()["error"] == "invalid_grant"
    assert "expired" in expired.json()["error_description"]


def test_authorize_refusals(ehr, sandbox_http):
    def fresh(**extra) -> Flow:
        return Flow(ehr, launch=ehr.mint_launch().token, **extra)

    # No valid redirect URI: an error page, never a redirect.
    for bad in ({"redirect_uri": redirect_of(ehr) + "/"}, {"client_id": "nobody"}):
        page = sandbox_http.get(fresh(**bad).url, allow_redirects=False)
        assert page.status_code == 400 and "Authorization error" in page.text

    def error_of(flow: Flow) -> dict[str, str]:
        result = flow.authorize(sandbox_http)
        assert "code" not in result
        if ehr.name == "cerner":
            assert result["error_uri"] and result["iss"] == ehr.issuer
        return result

    trailing = error_of(fresh(aud=ehr.fhir_base + "/"))
    assert (
        trailing["error"] == "invalid_request" and "trailing slash" in trailing["error_description"]
    )
    assert trailing["state"]
    assert error_of(fresh(aud=None))["error"] == "invalid_request"
    assert error_of(fresh(code_challenge_method="plain"))["error"] == "invalid_request"
    assert error_of(fresh(code_challenge=None, code_challenge_method=None))["error"] == (
        "invalid_request"
    )
    assert error_of(fresh(response_type="token"))["error"] == "unsupported_response_type"
    no_state = error_of(fresh(state=None))
    assert no_state["error"] == "invalid_request" and "state" not in no_state
    assert error_of(fresh(scope="launch user/Observation.read"))["error"] == "invalid_scope"
    assert error_of(fresh(scope="openid fhirUser"))["error"] == "invalid_scope"  # no `launch`
    assert error_of(Flow(ehr, launch="made-up"))["error"] == "invalid_request"
    assert error_of(Flow(ehr, scope="openid fhirUser launch"))["error"] == "invalid_request"
    if ehr.name == "cerner":
        wild = error_of(fresh(scope="launch openid user/*.read"))
        assert wild["error"] == "invalid_scope" and "Wildcard" in wild["error_description"]
        v2 = fresh(scope="launch openid fhirUser user/Appointment.rs")
        assert "code" in v2.authorize(sandbox_http)
    else:
        v2 = error_of(fresh(scope="launch openid user/Appointment.rs"))  # no permission-v2
        assert v2["error"] == "invalid_scope"

    ehr.launch_lifetime = -1
    assert error_of(fresh())["error"] == "invalid_request"  # launch token expired


def test_launch_iss_must_be_the_aud(clean_sandbox, sandbox_http):
    epic = clean_sandbox.epic
    launch = epic.mint_launch(iss=epic.dstu2_base)
    assert parse_qs(urlsplit(launch.url).query)["iss"] == [epic.dstu2_base]
    refused = Flow(epic, launch=launch.token).authorize(sandbox_http)
    assert refused["error"] == "invalid_request"
    ok = Flow(epic, launch=launch.token, aud=epic.dstu2_base).authorize(sandbox_http)
    assert ok["code"]
    variant = launch_token(sandbox_http, clean_sandbox, "epic", variant="moved-hosts")
    assert variant["iss"] == epic.variant_base("moved-hosts")
    with pytest.raises(ValueError):
        epic.mint_launch(iss=epic.fhir_base + "/")


# -- standalone ---------------------------------------------------------------------------------
def test_standalone_sign_in(ehr, clean_sandbox, sandbox_http):
    flow = Flow(ehr, scope="openid fhirUser")
    page = sandbox_http.get(flow.url)
    assert page.status_code == 200 and "Dr. Maja Lindqvist" in page.text
    result = ehr_sign_in(sandbox_http, flow.url, "lindqvist")
    assert result.target == flow.redirect and result.params["state"] == flow.state
    body = flow.redeem(sandbox_http, result.params["code"]).json()
    assert body["scope"] == "openid fhirUser" and "patient" not in body
    claims = verify_id_token(clean_sandbox, sandbox_http, body["id_token"], flow.client_id)
    doc = ehr.chart.clinician("lindqvist")
    assert claims["fhirUser"] == f"{ehr.fhir_base}/Practitioner/{ehr.chart.id_of(doc)}"
    assert claims["sub"] == ehr.chart.id_of(doc)

    # The sign-in request is single use (with the picker on every sign-in: no EHR session).
    ehr.set_quirks(signed_in=False)
    again = ehr_sign_in_raw(sandbox_http, flow.url)
    replay = sandbox_http.post(
        ehr.authorize_url, data={"request_id": again, "user": "reyes"}, allow_redirects=False
    )
    assert replay.status_code == 302
    stale = sandbox_http.post(
        ehr.authorize_url, data={"request_id": again, "user": "reyes"}, allow_redirects=False
    )
    assert stale.status_code == 400


def test_standalone_sign_in_keeps_an_ehr_session(ehr, clean_sandbox, sandbox_http):
    """After the first pick the browser is signed in to the EHR, as in Hyperspace or MyChart:
    the next standalone authorize answers at once, for the same person, with a fresh code."""
    flow = Flow(ehr, scope="openid fhirUser")
    first = sandbox_http.get(flow.url, allow_redirects=False)
    request_id = first.text.split("name='request_id' value='")[1].split("'")[0]
    picked = sandbox_http.post(
        ehr.authorize_url, data={"request_id": request_id, "user": "lindqvist"},
        allow_redirects=False,
    )  # fmt: skip
    cookie = picked.headers["Set-Cookie"]
    assert cookie.startswith(f"{ehr.name}_ehr_session=") and f"Path=/{ehr.name};" in cookie
    assert all(a in cookie for a in ("Secure", "HttpOnly", "SameSite=None"))
    assert sandbox_http.cookies.get(f"{ehr.name}_ehr_session")

    again = Flow(ehr, scope="openid fhirUser")
    answer = sandbox_http.get(again.url, allow_redirects=False)
    assert answer.status_code == 302, "signed in: no sign-in page"
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    assert params["state"] == again.state
    body = again.redeem(sandbox_http, params["code"]).json()
    claims = verify_id_token(clean_sandbox, sandbox_http, body["id_token"], again.client_id)
    assert claims["sub"] == ehr.chart.id_of(ehr.chart.clinician("lindqvist"))
    # PKCE and the exact redirect URI are still checked for the session's codes.
    other = Flow(ehr, scope="openid fhirUser")
    location = sandbox_http.get(other.url, allow_redirects=False).headers["Location"]
    code = dict(parse_qsl(urlsplit(location).query))["code"]
    other.verifier = "x" * 64
    assert other.redeem(sandbox_http, code).json()["error"] == "invalid_grant"

    # A patient sign-in is another persona: the picker, not the clinician's session.
    patient = Flow(ehr, scope="openid fhirUser patient/Patient.read")
    (at,) = [u for u, p in ehr.authorize_urls.items() if p in ("patient", "by scopes")]
    url = f"{at}?{urlencode(patient.params)}"
    assert sandbox_http.get(url, allow_redirects=False).status_code == 200
    # A browser without the cookie, or the EHR with signed_in=False, gets the picker.
    fresh = requests_without_cookies(sandbox_http)
    assert fresh.get(again.url, allow_redirects=False).status_code == 200
    ehr.set_quirks(signed_in=False)
    assert sandbox_http.get(again.url, allow_redirects=False).status_code == 200
    clean_sandbox.reset()  # and a reset forgets every session
    assert sandbox_http.get(again.url, allow_redirects=False).status_code == 200


def requests_without_cookies(http):
    fresh = requests.Session()
    fresh.trust_env, fresh.verify = False, http.verify
    return fresh


def ehr_sign_in_raw(http, url: str) -> str:
    text = http.get(url).text
    return text.split("name='request_id' value='")[1].split("'")[0]


def test_cerner_patient_persona_signs_in_patients(clean_sandbox, sandbox_http):
    cerner = clean_sandbox.cerner
    (patient_authorize,) = [u for u, p in cerner.authorize_urls.items() if p == "patient"]
    assert patient_authorize.endswith("/smart-v1/personas/patient/authorize")
    flow = Flow(cerner, scope="openid fhirUser patient/Patient.read")
    url = f"{patient_authorize}?{urlencode(flow.params)}"
    assert "Jordan Rivera" in sandbox_http.get(url).text
    result = ehr_sign_in(sandbox_http, url, "rivera")
    body = flow.redeem(sandbox_http, result.params["code"]).json()
    patient_id = cerner.chart.id_of(cerner.chart.patient("rivera"))
    assert body["patient"] == patient_id and "user" not in body
    claims = verify_id_token(clean_sandbox, sandbox_http, body["id_token"], flow.client_id)
    assert claims["fhirUser"].endswith(f"/Patient/{patient_id}")
    # A provider launch works on the patient persona too.
    launched = Flow(cerner, launch=cerner.mint_launch().token)
    assert "code" in launched.authorize(sandbox_http, url=patient_authorize)


def test_sandbox_helpers_for_the_apps_tests(clean_sandbox, sandbox_http, jwks_server):
    box = clean_sandbox
    assert box.ehr_base("epic") == box.epic.fhir_base
    assert box.ehr_base("epic", dstu2=True) == box.epic.dstu2_base
    with pytest.raises(ValueError):
        box.ehr_base("cerner", dstu2=True)
    assert box.variant_base("huge") == box.epic.variant_base("huge")
    assert box.variant_base("plain", vendor="cerner") == box.cerner.variant_base("plain")

    # A standalone sign-in played to the end: the tiny server stands in for the app's callback.
    callback = jwks_server.url
    box.cerner.update_client("evc-cerner-test", redirect_uris=[callback])
    flow = Flow(box.cerner, scope="openid fhirUser", redirect_uri=callback)
    final = box.ehr_standalone_sign_in(flow.url, user="okafor")
    assert final.status_code == 200 and final.url.startswith(callback + "?")
    back = {k: v[0] for k, v in parse_qs(urlsplit(final.url).query).items()}
    assert back["state"] == flow.state and back["iss"] == box.cerner.issuer
    body = flow.redeem(sandbox_http, back["code"]).json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    okafor = box.cerner.chart.id_of(box.cerner.chart.clinician("okafor"))
    assert claims["fhirUser"].endswith(f"/Practitioner/{okafor}")
    first = box.ehr_standalone_sign_in(Flow(box.cerner, "openid", redirect_uri=callback).url)
    assert "code=" in first.url  # default: the first person listed


# -- quirks -------------------------------------------------------------------------------------
def test_context_quirks(clean_sandbox, sandbox_http):
    epic = clean_sandbox.epic
    control(
        sandbox_http,
        clean_sandbox,
        "epic",
        "/quirks",
        {
            "omit_context": ["appointment", "encounter"],
            "extra_context": {"csn": "720001"},
            "user_field": "userId",
            "need_patient_banner": True,
            "expires_in": 120,
        },
    )
    flow = Flow(epic, launch=epic.mint_launch().token)
    body = flow.redeem(sandbox_http, flow.authorize(sandbox_http)["code"]).json()
    assert "appointment" not in body and "encounter" not in body and body["patient"]
    assert body["csn"] == "720001" and body["userId"] == "AREYES" and "epicUserID" not in body
    assert body["need_patient_banner"] == "true" and body["expires_in"] == 120

    bad = sandbox_http.post(f"{clean_sandbox.url}/_sandbox/epic/quirks", json={"nope": 1})
    assert bad.status_code == 400
    bad = sandbox_http.post(f"{clean_sandbox.url}/_sandbox/epic/quirks", json={"expires_in": "x"})
    assert bad.status_code == 400
    clean_sandbox.reset()
    assert epic.quirks["omit_context"] == [] and epic.quirks["user_field"] == "epicUserID"


def test_grant_less_scopes(ehr, sandbox_http):
    ehr.update_client(f"evc-{ehr.name}-test", grant_less=["user/Encounter.read"])
    flow = Flow(ehr, launch=ehr.mint_launch().token)
    body = flow.redeem(sandbox_http, flow.authorize(sandbox_http)["code"]).json()
    assert "user/Encounter.read" not in body["scope"].split()
    assert "user/Appointment.read" in body["scope"].split()
    encounter = sandbox_http.get(
        f"{ehr.fhir_base}/Encounter/{body['encounter']}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert encounter.status_code == 403


def quirked_id_token(sandbox, http, kind: str):
    """The Cerner stand-in's id_token under the bad_id_token quirk, and a verifier for it."""
    cerner = sandbox.cerner
    cerner.set_quirks(bad_id_token=kind)
    flow = Flow(cerner, launch=cerner.mint_launch().token)
    token = flow.redeem(http, flow.authorize(http)["code"]).json()["id_token"]
    header = jwt.get_unverified_header(token)
    keys = jwt.PyJWKSet.from_dict(http.get(cerner.jwks_uri).json()).keys

    def verify() -> dict:
        candidates = [k for k in keys if k.key_id == header.get("kid")] or keys
        for key in candidates:  # no kid: try every key, as the app must
            try:
                claims = jwt.decode(
                    token, key.key, algorithms=["RS256"], audience=flow.client_id,
                    issuer=cerner.issuer,
                )  # fmt: skip
            except jwt.InvalidSignatureError:
                continue
            if claims.get("nonce") != flow.nonce:
                raise jwt.InvalidTokenError("nonce")
            return claims
        raise jwt.InvalidSignatureError("no key verifies")

    return header, verify, flow


# Each broken kind must fail for its own reason, not for whatever else happens to break.
@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("wrong_aud", jwt.InvalidAudienceError, None),
        ("expired", jwt.ExpiredSignatureError, None),
        ("bad_signature", jwt.InvalidSignatureError, "no key verifies"),
        ("wrong_nonce", jwt.InvalidTokenError, "nonce"),
        ("wrong_iss", jwt.InvalidIssuerError, None),
    ],
)
def test_bad_id_token_quirk(clean_sandbox, sandbox_http, kind, error, message):
    header, verify, _ = quirked_id_token(clean_sandbox, sandbox_http, kind)
    assert header.get("kid")  # only missing_kid drops it
    with pytest.raises(error) as caught:
        verify()
    assert message is None or str(caught.value) == message


def test_id_token_quirk_missing_kid_is_valid(clean_sandbox, sandbox_http):
    header, verify, flow = quirked_id_token(clean_sandbox, sandbox_http, "missing_kid")
    assert "kid" not in header
    assert verify()["nonce"] == flow.nonce  # valid: the client must cope


def test_authorize_error_quirk_fires_once(ehr, sandbox_http):
    ehr.set_quirks(authorize_error={"error": "access_denied", "error_description": "Denied"})
    flow = Flow(ehr, launch=ehr.mint_launch().token)
    denied = flow.authorize(sandbox_http)
    assert denied == {
        **denied,
        "error": "access_denied",
        "error_description": "Denied",
        "state": flow.state,
    }
    assert ("error_uri" in denied) == (ehr.name == "cerner")
    assert "code" in flow.authorize(sandbox_http)  # the launch was not burnt by the error


def test_rfc9207_iss_is_a_quirk(clean_sandbox, sandbox_http):
    epic = clean_sandbox.epic
    epic.set_quirks(rfc9207_iss=True)
    result = Flow(epic, launch=epic.mint_launch().token).authorize(sandbox_http)
    assert result["iss"] == epic.issuer
    doc = smart_doc(sandbox_http, epic.fhir_base).json()
    assert doc["authorization_response_iss_parameter_supported"] is True


# -- FHIR ---------------------------------------------------------------------------------------
def test_fhir_search_and_errors(clean_sandbox, sandbox_http):
    cerner = clean_sandbox.cerner
    flow = Flow(cerner, launch=cerner.mint_launch(clinician="lindqvist").token)
    body = flow.redeem(sandbox_http, flow.authorize(sandbox_http)["code"]).json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    url = f"{cerner.fhir_base}/Appointment"
    day = today().isoformat()

    def search(**params) -> requests.Response:
        return sandbox_http.get(url, params=params, headers=bearer)

    by_patient = search(date=day, patient=f"Patient/{body['patient']}").json()
    assert by_patient["total"] == 1
    assert by_patient["entry"][0]["fullUrl"].startswith(cerner.fhir_base + "/Appointment/")
    assert search(date=f"ge{day}T13:00:00Z", practitioner=body["user"]).json()["total"] == 1
    assert search(date=f"lt{day}T13:00:00Z", practitioner=body["user"]).json()["total"] == 0
    assert search(date="2001-01-01", practitioner=body["user"]).json()["total"] == 0
    assert search(practitioner=body["user"]).status_code == 400  # date required
    assert search(date=day).status_code == 400  # and a patient / practitioner / location
    assert search(date="soon", patient=body["patient"]).status_code == 400
    assert search(date=day, patient="999").json()["total"] == 0

    missing = sandbox_http.get(f"{cerner.fhir_base}/Patient/000", headers=bearer)
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    forged = sandbox_http.get(url, params={"date": day}, headers={"Authorization": "Bearer x"})
    assert forged.status_code == 401 and "invalid_token" in forged.headers["WWW-Authenticate"]


# -- controls -----------------------------------------------------------------------------------
def test_client_registry_over_the_control_api(clean_sandbox, sandbox_http):
    base = f"{clean_sandbox.url}/_sandbox/cerner/clients"
    listed = sandbox_http.get(base).json()["clients"]
    assert {c["client_id"] for c in listed} == {"evc-cerner-test", "evc-cerner-jwt"}
    test_client = next(c for c in listed if c["client_id"] == "evc-cerner-test")
    configured = clean_sandbox.cerner.connector.redirect_uris
    assert test_client["secret"] == "***" and test_client["redirect_uris"] == configured

    redirect = "http://127.0.0.1:54321/api/launch/callback"
    created = sandbox_http.post(
        base,
        json={
            "client_id": "app-on-random-port",
            "auth_method": "client_secret_basic",
            "secret": "abc-123",
            "redirect_uris": [redirect],
            "scopes": ["launch", "openid", "fhirUser", "user/Appointment.rs"],
        },
    )
    assert created.status_code == 201 and created.json()["secret"] == "***"
    changed = sandbox_http.post(
        base, json={"client_id": "evc-cerner-test", "redirect_uris": [redirect]}
    )
    assert changed.status_code == 200 and changed.json()["redirect_uris"] == [redirect]
    assert (
        sandbox_http.post(base, json={"client_id": "x", "auth_method": "magic"}).status_code == 400
    )
    assert sandbox_http.post(base, json={"client_id": "x", "colour": "red"}).status_code == 400
    assert sandbox_http.delete(f"{base}/app-on-random-port").json() == {"removed": True}
    assert sandbox_http.get(f"{base}/app-on-random-port").status_code == 404
    assert clean_sandbox.journal.count(stand_in="cerner") == 0  # controls are not journaled

    clean_sandbox.reset()
    assert clean_sandbox.cerner.clients.get("evc-cerner-test").redirect_uris == configured


def test_control_summary_and_data(sandbox, sandbox_http):
    summary = sandbox_http.get(f"{sandbox.url}/_sandbox/epic/").json()
    assert summary["fhir_base"] == sandbox.epic.fhir_base
    assert summary["launch_urls"]["provider"].endswith("/epic-sandbox-test/provider")
    assert "bad_id_token" in summary["quirk_help"]
    data = sandbox_http.get(f"{sandbox.url}/_sandbox/cerner/data").json()
    assert len(data["clinicians"]) == 3 and len(data["patients"]) == 4
    assert [a["start"][11:16] for a in data["appointments"]] == ["09:00", "09:30", "10:00", "14:00"]
    assert all(a["id"].isdigit() for a in data["appointments"])
    epic_ids = sandbox_http.get(f"{sandbox.url}/_sandbox/epic/data").json()
    assert all(p["id"].startswith("e") for p in epic_ids["patients"])
    bad = sandbox_http.post(f"{sandbox.url}/_sandbox/epic/launch", json={"clinician": "nobody"})
    assert bad.status_code == 400
    mismatch = sandbox_http.post(
        f"{sandbox.url}/_sandbox/epic/launch",
        json={"kind": "patient", "patient": "rivera", "appointment": "okafor-1000"},
    )
    assert mismatch.status_code == 400


def test_no_tokens_in_logs_or_journal(clean_sandbox, sandbox_http, caplog):
    caplog.set_level(logging.DEBUG, logger="dev.sandbox")
    epic = clean_sandbox.epic
    launch = epic.mint_launch().token
    flow = Flow(epic, launch=launch)
    code = flow.authorize(sandbox_http)["code"]
    body = flow.redeem(sandbox_http, code).json()
    journal = json.dumps([e.to_json() for e in clean_sandbox.journal.entries()])
    for secret in (launch, code, flow.verifier, body["access_token"], body["id_token"]):
        assert secret not in caplog.text and secret not in journal
    assert "oauth2/token" in caplog.text


def test_describe_lists_the_urls(sandbox):
    for vendor, portal in (("epic", "/epic/mychart"), ("cerner", "/cerner/portal")):
        lines = sandbox.stand_ins[vendor].describe()
        text = " ".join(lines.values())
        assert lines["FHIR R4 base (iss)"] == sandbox.stand_ins[vendor].fhir_base
        origin = sandbox.origins[vendor]
        assert lines["origin"] == origin and origin != sandbox.url
        assert f"{origin}/{vendor}/schedule" in text and f"{origin}{portal}" in text
        assert f"{sandbox.url}/_sandbox/{vendor}/" in text  # controls: the control origin
