"""The sandbox base (TLS, journal, latency, faults, CLI) and its Entra ID stand-in."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from dev import token as dev_token
from dev.procs import ROOT, free_port, start_group, stop, wait_for_port
from dev.sandbox import Sandbox, start_sandbox
from dev.sandbox.directory import (
    CLI_CLIENT_ID,
    CONNECTOR_API_AUDIENCE,
    CONNECTOR_CLIENT_ID,
    DEFAULT_CONNECTOR_SECRET,
    TENANT_DOMAIN,
    TENANT_ID,
    USERS,
)
from tests.plugins.sandbox import SignInResult, entra_sign_in

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
REDIRECT = "http://localhost:7071/api/auth/callback"
USER_OIDS = {u.key: u.object_id for u in USERS}


# -- helpers ------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def jwk_client(sandbox: Sandbox) -> jwt.PyJWKClient:
    ctx = ssl.create_default_context(cafile=str(sandbox.ca_file))
    return jwt.PyJWKClient(sandbox.entra.jwks_uri, ssl_context=ctx)


def validate(sandbox: Sandbox, token: str, audience: str) -> dict:
    """Validate as the app will: JWKS from the sandbox, issuer from ENTRA_AUTHORITY_HOST."""
    key = jwk_client(sandbox).get_signing_key_from_jwt(token)
    issuer = f"{sandbox.entra.authority_host}/{TENANT_ID}/v2.0"
    return jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "nbf", "iat", "iss", "aud"]},
    )


def connector_msal(sandbox: Sandbox, secret: str = DEFAULT_CONNECTOR_SECRET):
    return msal.ConfidentialClientApplication(
        CONNECTOR_CLIENT_ID,
        client_credential=secret,
        authority=sandbox.entra.authority,
        instance_discovery=False,
    )


def authorize_url(
    sandbox: Sandbox, challenge: str, client_id: str = CLI_CLIENT_ID, **extra: str
) -> str:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": f"openid profile offline_access {CONNECTOR_API_AUDIENCE}/Connector.Access",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{sandbox.entra.authorization_endpoint}?{urlencode(params)}"


def code_from(result: SignInResult) -> str:
    assert result.target == REDIRECT and result.params["state"] == "st-123"
    return result.params["code"]


def redeem(
    http: requests.Session,
    sandbox: Sandbox,
    code: str,
    verifier: str,
    client_id: str = CLI_CLIENT_ID,
) -> requests.Response:
    return http.post(
        sandbox.entra.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )


# -- discovery ----------------------------------------------------------------------------------
def test_discovery_and_jwks(sandbox, sandbox_http):
    entra = sandbox.entra
    config = sandbox_http.get(f"{entra.authority}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{sandbox.origins['entra']}/entra/{TENANT_ID}/v2.0"
    assert config["token_endpoint"] == f"{entra.authority}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{entra.authority}/oauth2/v2.0/authorize"
    assert "S256" in config["code_challenge_methods_supported"]

    by_domain = sandbox_http.get(
        f"{entra.authority_host}/{TENANT_DOMAIN}/v2.0/.well-known/openid-configuration"
    ).json()
    assert by_domain["issuer"] == config["issuer"]  # issuer always carries the tenant id

    unknown = sandbox_http.get(f"{entra.authority_host}/nope/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_tenant"

    keys = sandbox_http.get(config["jwks_uri"]).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["kid"] and k["n"] and k["e"] for k in keys)
    assert keys[0]["kid"] == keys[0]["x5t"]


# -- client credentials -------------------------------------------------------------------------
def test_msal_client_credentials_token_validates(sandbox, sandbox_trust):
    result = connector_msal(sandbox).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result.get("error_description")
    claims = validate(sandbox, result["access_token"], "https://graph.microsoft.com")
    assert claims["tid"] == TENANT_ID and claims["ver"] == "2.0"
    assert claims["azp"] == CONNECTOR_CLIENT_ID and claims["idtyp"] == "app"
    assert claims["oid"] == claims["sub"]
    assert "OnlineMeetings.ReadWrite.All" in claims["roles"]
    assert claims["nbf"] <= time.time() < claims["exp"]
    assert jwt.get_unverified_header(result["access_token"])["kid"]


def test_msal_wrong_secret_is_rejected(sandbox, sandbox_trust):
    result = connector_msal(sandbox, "not-the-secret").acquire_token_for_client(
        scopes=[GRAPH_DEFAULT]
    )
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]


def test_client_credentials_needs_a_default_scope_of_a_known_resource(sandbox, sandbox_http):
    def ask(scope: str) -> dict:
        return sandbox_http.post(
            sandbox.entra.token_endpoint,
            data={
                "grant_type": "client_credentials",
                "client_id": CONNECTOR_CLIENT_ID,
                "client_secret": DEFAULT_CONNECTOR_SECRET,
                "scope": scope,
            },
        ).json()

    assert ask("User.Read")["error"] == "invalid_scope"
    assert ask("api://unknown/.default")["error"] == "invalid_resource"
    assert "access_token" in ask(f"{CONNECTOR_API_AUDIENCE}/.default")


def test_msal_certificate_credential(clean_sandbox, sandbox_trust):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evc-connector-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    credential = {"private_key": key_pem.decode(), "public_certificate": cert_pem.decode()}
    app = msal.ConfidentialClientApplication(
        CONNECTOR_CLIENT_ID,
        client_credential=credential,
        authority=clean_sandbox.entra.authority,
        instance_discovery=False,
    )

    refused = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert refused["error"] == "invalid_client"  # certificate not registered yet

    clean_sandbox.entra.add_client_certificate(CONNECTOR_CLIENT_ID, cert_pem)
    result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result.get("error_description")
    assert (
        validate(clean_sandbox, result["access_token"], "https://graph.microsoft.com")["azpacr"]
        == "2"
    )


# -- authorization code + PKCE ------------------------------------------------------------------
def test_auth_code_pkce_flow(clean_sandbox, sandbox_http):
    sandbox = clean_sandbox
    verifier, challenge = pkce_pair()
    code = code_from(entra_sign_in(sandbox_http, authorize_url(sandbox, challenge), "admin"))

    wrong = redeem(sandbox_http, sandbox, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert 501481 in wrong.json()["error_codes"]

    ok = redeem(sandbox_http, sandbox, code, verifier)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert ok.headers["Cache-Control"] == "no-store"
    access = validate(sandbox, body["access_token"], CONNECTOR_API_AUDIENCE)
    assert access["oid"] == USER_OIDS["admin"] and access["scp"] == "Connector.Access"
    assert access["roles"] == ["Connector.Admin"] and access["azp"] == CLI_CLIENT_ID
    assert access["azpacr"] == "0"  # public client
    id_token = validate(sandbox, body["id_token"], CLI_CLIENT_ID)
    assert id_token["nonce"] == "n-456" and id_token["preferred_username"].startswith("morgan")
    assert body["refresh_token"]

    again = redeem(sandbox_http, sandbox, code, verifier)
    assert again.status_code == 400 and 54005 in again.json()["error_codes"]


@pytest.mark.parametrize("mode", ["query", "fragment", "form_post"])
def test_response_modes(sandbox, sandbox_http, mode):
    verifier, challenge = pkce_pair()
    url = authorize_url(sandbox, challenge, response_mode=mode)
    code = code_from(entra_sign_in(sandbox_http, url, "lindqvist"))
    assert redeem(sandbox_http, sandbox, code, verifier).status_code == 200


def test_auth_code_is_bound_to_client_and_redirect(clean_sandbox, sandbox_http):
    verifier, challenge = pkce_pair()
    code = code_from(entra_sign_in(sandbox_http, authorize_url(clean_sandbox, challenge), "reyes"))
    other_client = sandbox_http.post(
        clean_sandbox.entra.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "client_id": CONNECTOR_CLIENT_ID,
            "client_secret": DEFAULT_CONNECTOR_SECRET,
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert other_client.json()["error"] == "invalid_grant"
    other_redirect = sandbox_http.post(
        clean_sandbox.entra.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "client_id": CLI_CLIENT_ID,
            "code": code,
            "redirect_uri": "http://localhost:9/elsewhere",
            "code_verifier": verifier,
        },
    )
    assert other_redirect.json()["error"] == "invalid_grant"
    assert redeem(sandbox_http, clean_sandbox, code, verifier).status_code == 200


def test_auth_code_expires(clean_sandbox, sandbox_http):
    clean_sandbox.entra.code_lifetime = -1  # restored by the reset after the test
    verifier, challenge = pkce_pair()
    code = code_from(entra_sign_in(sandbox_http, authorize_url(clean_sandbox, challenge), "reyes"))
    expired = redeem(sandbox_http, clean_sandbox, code, verifier)
    assert expired.status_code == 400 and 70008 in expired.json()["error_codes"]


def test_sign_in_page_refuses_to_be_framed(sandbox, sandbox_http):
    """As login.microsoftonline.com does: an app framed by an EHR cannot show it in the frame."""
    _, challenge = pkce_pair()
    page = sandbox_http.get(authorize_url(sandbox, challenge))
    assert page.status_code == 200 and "Sign in" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_authorize_refuses_bad_requests(sandbox, sandbox_http):
    _, challenge = pkce_pair()
    foreign = authorize_url(sandbox, challenge, redirect_uri="https://evil.example/cb")
    page = sandbox_http.get(foreign, allow_redirects=False)
    assert page.status_code == 400 and "AADSTS50011" in page.text  # error page, no redirect

    no_pkce = authorize_url(sandbox, "", code_challenge_method="")
    answer = sandbox_http.get(no_pkce, allow_redirects=False)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["invalid_request"]


def test_msal_auth_code_flow_and_refresh(clean_sandbox, sandbox_trust, sandbox_http):
    app = connector_msal(clean_sandbox)
    scopes = [f"{CONNECTOR_API_AUDIENCE}/Connector.Access"]
    flow = app.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT, response_mode="form_post")
    signed_in = entra_sign_in(sandbox_http, flow["auth_uri"], "approver")
    assert signed_in.target == REDIRECT  # the form_post page posts to the app
    result = app.acquire_token_by_auth_code_flow(flow, signed_in.params)
    assert "access_token" in result, result.get("error_description")
    assert result["id_token_claims"]["oid"] == USER_OIDS["approver"]
    claims = validate(clean_sandbox, result["access_token"], CONNECTOR_API_AUDIENCE)
    assert claims["roles"] == ["Connector.Approver"] and claims["azpacr"] == "1"

    account = app.get_accounts()[0]
    refreshed = app.acquire_token_silent(scopes, account=account, force_refresh=True)
    assert refreshed and refreshed["access_token"] != result["access_token"]
    assert clean_sandbox.journal.count(path="*/oauth2/v2.0/token", method="POST") == 2


def test_nothing_secret_is_logged(clean_sandbox, sandbox_http, caplog):
    caplog.set_level(logging.DEBUG, logger="dev.sandbox")
    verifier, challenge = pkce_pair()
    code = code_from(entra_sign_in(sandbox_http, authorize_url(clean_sandbox, challenge), "reyes"))
    token = redeem(sandbox_http, clean_sandbox, code, verifier).json()["access_token"]
    assert "oauth2/v2.0/token" in caplog.text
    for secret in (code, verifier, challenge, token, token.split(".")[1]):
        assert secret not in caplog.text


# -- dev.token ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "value"),
    [
        ("admin", "Connector.Admin"),
        ("approver", "Connector.Approver"),
        ("reader", "Connector.Reader"),
    ],
)
def test_dev_token_roles(sandbox, capsys, role, value):
    state_dir = sandbox.state.state_dir
    url = sandbox.entra.origin
    code = dev_token.main(["--role", role, "--url", url, "--state-dir", str(state_dir)])
    assert code == 0
    token = capsys.readouterr().out.strip()
    claims = validate(sandbox, token, CONNECTOR_API_AUDIENCE)
    assert claims["roles"] == [value] and claims["oid"] == USER_OIDS[role]
    assert claims["tid"] == TENANT_ID and claims["ver"] == "2.0"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] <= time.time()


def test_dev_token_cli_user_and_expiry(sandbox):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dev.token",
            "--role",
            "admin",
            "--user",
            "okafor",
            "--expires-in",
            "120",
            "--url",
            sandbox.entra.origin,
            "--state-dir",
            str(sandbox.state.state_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    claims = validate(sandbox, out.stdout.strip(), CONNECTOR_API_AUDIENCE)
    assert claims["oid"] == USER_OIDS["okafor"] and claims["roles"] == ["Connector.Admin"]
    assert claims["exp"] - claims["iat"] == 120


def test_dev_token_without_a_sandbox_says_so(sandbox, capsys):
    code = dev_token.main(
        [
            "--role",
            "admin",
            "--url",
            f"https://127.0.0.1:{free_port()}",
            "--state-dir",
            str(sandbox.state.state_dir),
        ]
    )
    assert code == 2 and "no sandbox answers" in capsys.readouterr().err


def test_key_rotation_keeps_old_key_published(clean_sandbox, sandbox_http):
    entra = clean_sandbox.entra
    old_token = entra.mint(roles=["Connector.Reader"], user="reader")
    new_kid = entra.rotate_key()
    kids = [k["kid"] for k in sandbox_http.get(entra.jwks_uri).json()["keys"]]
    assert kids[0] == new_kid and len(kids) == 2
    new_token = entra.mint(roles=["Connector.Reader"], user="reader")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    for token in (old_token, new_token):
        assert validate(clean_sandbox, token, CONNECTOR_API_AUDIENCE)["oid"]


# -- journal, latency, faults -------------------------------------------------------------------
def test_journal_records_requests(clean_sandbox, sandbox_http):
    sandbox = clean_sandbox
    sandbox_http.get(sandbox.entra.jwks_uri, params={"probe": "secret-value"})
    sandbox_http.get(f"{sandbox.entra.origin}/entra/{TENANT_ID}/nope")
    # On another party's origin the path is not Entra's at all: a 404 that is not journaled.
    wrong = sandbox_http.get(f"{sandbox.graph.origin}/entra/{TENANT_ID}/nope")
    assert wrong.status_code == 404 and wrong.json()["error"] == "wrong_origin"
    entries = sandbox.journal.entries(stand_in="entra")
    assert [(e.method, e.status) for e in entries] == [("GET", 200), ("GET", 404)]
    assert entries[0].path == urlsplit(sandbox.entra.jwks_uri).path
    assert entries[0].query_keys == ("probe",)

    over_http = sandbox_http.get(
        f"{sandbox.url}/_sandbox/requests", params={"path": "*/keys"}
    ).json()["requests"]
    assert len(over_http) == 1 and "secret-value" not in json.dumps(over_http)

    assert sandbox_http.post(f"{sandbox.url}/_sandbox/reset").status_code == 200
    assert len(sandbox.journal) == 0  # control calls are not journaled either


def test_latency_injection(clean_sandbox, sandbox_http):
    sandbox = clean_sandbox

    def timed() -> float:
        started = time.perf_counter()
        sandbox_http.get(sandbox.entra.jwks_uri).raise_for_status()
        return time.perf_counter() - started

    config = sandbox_http.post(f"{sandbox.url}/_sandbox/config", json={"latency": 0.25})
    assert config.json()["latency"] == 0.25
    assert timed() >= 0.25
    assert sandbox.journal.entries()[-1].duration_ms >= 250

    # A per-stand-in value overrides the default (a benchmark may slow down one party only).
    sandbox.set_latency(0.0, per_stand_in={"entra": 0.15})
    assert timed() >= 0.15

    sandbox.reset()
    assert sandbox_http.get(f"{sandbox.url}/_sandbox/config").json()["latency"] == 0.0


def test_latency_from_constructor(tmp_path):
    with start_sandbox(state_dir=tmp_path, latency=0.2, stand_ins=["entra"]) as slow:
        started = time.perf_counter()
        requests.get(slow.entra.jwks_uri, verify=str(slow.ca_file), timeout=10)
        assert time.perf_counter() - started >= 0.2


def test_fault_injection(clean_sandbox, sandbox_http):
    sandbox = clean_sandbox
    sandbox.inject("/entra/*/discovery/v2.0/keys", status=503, retry_after=3, count=2)
    answers = [sandbox_http.get(sandbox.entra.jwks_uri) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert [e.faulted for e in sandbox.journal.entries()] == [True, True, False]

    added = sandbox_http.post(
        f"{sandbox.url}/_sandbox/faults",
        json={
            "path": "/entra/*/oauth2/v2.0/token",
            "status": 429,
            "body": {"error": "slow_down"},
            "method": "POST",
        },
    )
    assert added.status_code == 201
    assert len(sandbox_http.get(f"{sandbox.url}/_sandbox/faults").json()["faults"]) == 1
    throttled = sandbox_http.post(sandbox.entra.token_endpoint, data={})
    assert throttled.status_code == 429 and throttled.json() == {"error": "slow_down"}

    bad = sandbox_http.post(f"{sandbox.url}/_sandbox/faults", json={"status": 500})
    assert bad.status_code == 400


def test_fault_after_handling_loses_the_response(clean_sandbox, sandbox_http):
    """after=True: the stand-in acts (the code is redeemed) but the client sees a 502."""
    verifier, challenge = pkce_pair()
    code = code_from(entra_sign_in(sandbox_http, authorize_url(clean_sandbox, challenge), "reyes"))
    clean_sandbox.inject("*/oauth2/v2.0/token", status=502, after=True)
    assert redeem(sandbox_http, clean_sandbox, code, verifier).status_code == 502
    assert 54005 in redeem(sandbox_http, clean_sandbox, code, verifier).json()["error_codes"]


# -- TLS, persistence, CLI ----------------------------------------------------------------------
def test_tls_needs_the_sandbox_ca(sandbox):
    url = f"{sandbox.url}/_sandbox/health"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, verify=True, timeout=10)  # system trust store only
    assert requests.get(url, verify=str(sandbox.ca_file), timeout=10).json()["ok"]
    by_name = f"https://localhost:{sandbox.port}/_sandbox/health"
    assert requests.get(by_name, verify=str(sandbox.ca_file), timeout=10).status_code == 200


def test_ca_and_signing_key_persist_across_runs(sandbox):
    state_dir: Path = sandbox.state.state_dir
    ca_before = sandbox.ca_file.read_bytes()
    with start_sandbox(state_dir=state_dir, stand_ins=["entra"]) as second:
        assert second.ca_file.read_bytes() == ca_before
        assert second.entra.jwks()["keys"][0]["kid"] == sandbox.entra.jwks()["keys"][0]["kid"]
        assert oct(second.ca_file.with_name("sandbox-ca-key.pem").stat().st_mode)[-3:] == "600"


def test_cli_runs_until_stopped(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = start_group(
        [
            sys.executable,
            "-m",
            "dev.sandbox",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=20, proc=proc)
        ca = tmp_path / "certs" / "sandbox-ca.pem"
        health = requests.get(
            f"https://127.0.0.1:{port}/_sandbox/health", verify=str(ca), timeout=10
        )
        assert health.json()["ok"] and "entra" in health.json()["stand_ins"]
    finally:
        stop(proc)
    out = proc.stdout.read()
    assert proc.returncode == 0
    assert f"https://127.0.0.1:{port}" in out and "ENTRA_AUTHORITY_HOST" in out
