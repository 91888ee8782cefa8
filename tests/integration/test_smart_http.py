"""lib.smart's network side against a real HTTPS server on 127.0.0.1 (no mocks).

A Werkzeug server with a certificate from a throw-away CA (trustme) plays the EHR: discovery,
metadata, token endpoint, OpenID configuration and JWKS. Each test installs the routes it needs.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_plus

import jwt
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lib.net.http import OutboundHttp, host_of
from lib.net.jwks import JwksCache
from lib.smart.client_auth import ASSERTION_TYPE, ClientSecretBasic, PrivateKeyJwt
from lib.smart.discovery import DiscoveryCache, discover, validate
from lib.smart.id_token import IdTokenVerifier
from lib.smart.keys import SigningKey
from lib.smart.tokens import BackendTokenCache, client_credentials, exchange_code
from lib.web.errors import AppError
from tests.helpers import generate_ec_pem, generate_rsa_pem

Handler = Callable[[Request], Response]


@dataclass
class Call:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Ehr:
    """The running server: its base URL, the routes of the current test, the calls it saw."""

    base: str
    port: int
    routes: dict[str, Handler] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def wsgi(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        self.calls.append(
            Call(
                request.method,
                request.path,
                request.query_string.decode(),
                dict(request.headers),
                request.form.to_dict(),
            )
        )
        handler = self.routes.get(request.path)
        response = handler(request) if handler else Response("not here", status=404)
        return response(environ, start_response)


def json_response(doc: Any, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(doc), status=status, mimetype="application/json", headers=headers)


def sequence(*responses: Callable[[], Response]) -> Handler:
    """A handler answering with each response in turn (the last one repeats)."""
    served = iter(range(len(responses)))

    def handler(_: Request) -> Response:
        index = next(served, len(responses) - 1)
        return responses[index]()

    return handler


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_path(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def server(ca) -> Iterator[Ehr]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    holder: dict[str, Ehr] = {}
    wsgi_server = make_server(
        "127.0.0.1", 0, lambda e, s: holder["ehr"].wsgi(e, s), threaded=True, ssl_context=context
    )
    port = wsgi_server.server_port
    holder["ehr"] = Ehr(base=f"https://127.0.0.1:{port}", port=port)
    thread = threading.Thread(
        target=wsgi_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield holder["ehr"]
    wsgi_server.shutdown()
    thread.join(5)


@pytest.fixture
def ehr(server: Ehr) -> Ehr:
    server.routes.clear()
    server.calls.clear()
    return server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(ca_path, sleeps) -> Iterator[OutboundHttp]:
    client = OutboundHttp(local_mode=True, verify=ca_path, sleep=sleeps.append)
    yield client
    client.close()


def error_of(call: Callable[[], Any]) -> AppError:
    with pytest.raises(AppError) as caught:
        call()
    return caught.value


# --- OutboundHttp ----------------------------------------------------------------------------


def test_get_json_and_logs_without_query(ehr, http, caplog):
    ehr.routes["/fhir/Patient/p123"] = lambda r: json_response({"ok": True})
    caplog.set_level(logging.INFO, logger="lib.net.http")
    response = http.get(ehr.url("/fhir/Patient/p123?code=secret-code&x=1"))
    assert (response.status, response.json()) == (200, {"ok": True})
    assert ehr.calls[0].query == "code=secret-code&x=1"
    ours = [r for r in caplog.records if r.name == "lib.net.http"]
    assert len(ours) == 1
    record = ours[0]
    assert record.http_host == f"127.0.0.1:{ehr.port}"
    assert record.http_path == "/fhir/Patient/{id}"  # FHIR ids stay out of logs
    assert (record.http_method, record.http_status) == ("GET", 200)
    assert isinstance(record.duration_ms, int)
    assert "secret-code" not in record.getMessage() and "p123" not in record.getMessage()


def test_same_host_redirects_are_followed_up_to_three(ehr, http):
    for hop in range(4):
        ehr.routes[f"/r{hop}"] = lambda r, n=hop: Response(
            status=302, headers={"Location": f"/r{n + 1}"}
        )
    ehr.routes["/r4"] = lambda r: json_response({"arrived": True})
    assert http.get(ehr.url("/r1")).json() == {"arrived": True}  # r1 -> r2 -> r3 -> r4
    error = error_of(lambda: http.get(ehr.url("/r0")))  # four hops
    assert error.code == "DISC-REDIRECT"


def test_redirect_to_another_host_is_refused(ehr, http):
    elsewhere = f"https://localhost:{ehr.port}/x"
    ehr.routes["/away"] = lambda r: Response(status=301, headers={"Location": elsewhere})
    error = error_of(lambda: http.get(ehr.url("/away")))
    assert error.code == "DISC-REDIRECT"
    assert f"localhost:{ehr.port}" in error.detail
    assert ehr.paths() == ["/away"]


def test_post_redirect_is_returned_not_followed(ehr, http):
    ehr.routes["/token"] = lambda r: Response(status=307, headers={"Location": "/other"})
    assert http.post_form(ehr.url("/token"), {"a": "b"}).status == 307
    assert ehr.paths() == ["/token"]


def test_size_cap_with_content_length(ehr, ca_path):
    ehr.routes["/big"] = lambda r: Response(b"x" * 2048, mimetype="application/json")
    with OutboundHttp(local_mode=True, verify=ca_path, max_bytes=1024) as small:
        assert error_of(lambda: small.get(ehr.url("/big"))).code == "DISC-TOO-LARGE"


def test_size_cap_on_a_stream_without_length(ehr, http):
    def endless() -> Iterator[bytes]:
        for _ in range(64):
            yield b"[" * 65536  # 4 MiB in all, no Content-Length

    ehr.routes["/stream"] = lambda r: Response(endless(), mimetype="application/json")
    assert error_of(lambda: http.get(ehr.url("/stream"))).code == "DISC-TOO-LARGE"


def test_not_json(ehr, http):
    ehr.routes["/page"] = lambda r: Response("<html>login</html>", mimetype="text/html")
    error = error_of(lambda: http.get(ehr.url("/page")).json())
    assert (error.code, error.detail) == (
        "DISC-NOT-JSON",
        f"127.0.0.1:{ehr.port} answered text/html, not JSON",
    )


def test_untrusted_certificate_is_a_tls_error(ehr, tmp_path):
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with OutboundHttp(local_mode=True, verify=str(other_ca)) as client:
        assert error_of(lambda: client.get(ehr.url("/anything"))).code == "DISC-TLS"
    assert ehr.calls == []


def test_read_timeout_and_refused_connection_are_unreachable(ehr, ca_path):
    ehr.routes["/slow"] = lambda r: (time.sleep(1.0), json_response({}))[1]
    with OutboundHttp(local_mode=True, verify=ca_path, read_timeout=0.2) as client:
        assert error_of(lambda: client.get(ehr.url("/slow"))).code == "DISC-UNREACHABLE"
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        error = error_of(lambda: client.get(f"https://127.0.0.1:{closed}/"))
        assert error.code == "DISC-UNREACHABLE"


def test_retry_after_seconds_then_success(ehr, http, sleeps):
    ehr.routes["/busy"] = sequence(
        lambda: json_response({"error": "slow down"}, 429, **{"Retry-After": "2"}),
        lambda: json_response({"ok": True}),
    )
    assert http.get(ehr.url("/busy")).json() == {"ok": True}
    assert sleeps == [2.0]
    assert ehr.paths() == ["/busy", "/busy"]


def test_retry_after_http_date_and_at_most_two_retries(ehr, http, sleeps):
    later = formatdate(time.time() + 2, usegmt=True)
    ehr.routes["/down"] = lambda r: Response("down", 503, headers={"Retry-After": later})
    assert http.get(ehr.url("/down")).status == 503
    assert len(ehr.calls) == 3 and len(sleeps) == 2
    assert all(0 < s <= 3 for s in sleeps)


def test_retry_after_longer_than_the_cap_is_not_waited_for(ehr, http, sleeps):
    ehr.routes["/later"] = lambda r: Response("", 429, headers={"Retry-After": "3600"})
    assert http.get(ehr.url("/later")).status == 429
    assert sleeps == [] and len(ehr.calls) == 1


def test_allowed_hosts_pin(ehr, http):
    error = error_of(lambda: http.get(ehr.url("/x"), allowed_hosts={"ehr.example.org"}))
    assert error.code == "DISC-HOSTS-MOVED"
    assert ehr.calls == []
    ehr.routes["/x"] = lambda r: json_response({})
    assert http.get(ehr.url("/x"), allowed_hosts={host_of(ehr.base)}).status == 200


# --- SSRF guard (production mode) ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://ehr.example.org/fhir",  # not https
        "https://127.0.0.1/fhir",
        "https://10.0.0.1/fhir",
        "https://192.168.1.20/fhir",
        "https://169.254.169.254/metadata/instance",
        "https://168.63.129.16/machine?comp=goalstate",  # Azure's wire server (public range)
        "https://[::ffff:168.63.129.16]/",
        "https://[::1]/fhir",
        "https://localhost/fhir",  # a name resolving to loopback
        "https://user:pw@ehr.example.org/fhir",
        "file:///etc/passwd",
    ],
)
def test_non_public_targets_are_refused_before_connecting(url):
    with OutboundHttp(local_mode=False) as client:
        assert error_of(lambda: client.get(url)).code == "DISC-ADDRESS-NOT-ALLOWED"


def test_names_resolving_to_private_addresses_are_refused():
    resolver = lambda host, port: ["93.184.216.34", "10.1.2.3"]  # noqa: E731
    with OutboundHttp(local_mode=False, resolver=resolver) as client:
        error = error_of(lambda: client.get("https://internal.example.org/fhir"))
        assert error.code == "DISC-ADDRESS-NOT-ALLOWED"


def test_dns_rebinding_is_caught_at_connect_time(ehr, ca_path):
    # The look-up says "public", the connection lands on 127.0.0.1: refused before any byte.
    public_answer = lambda host, port: ["93.184.216.34"]  # noqa: E731
    ehr.routes["/fhir"] = lambda r: json_response({})
    with OutboundHttp(local_mode=False, verify=ca_path, resolver=public_answer) as client:
        error = error_of(lambda: client.get(f"https://localhost:{ehr.port}/fhir"))
    assert error.code == "DISC-ADDRESS-NOT-ALLOWED"
    assert ehr.calls == []


def test_local_mode_allows_loopback_and_http(ehr, http):
    ehr.routes["/fhir"] = lambda r: json_response({})
    assert http.get(ehr.url("/fhir")).status == 200
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # plain http is not refused by policy in local mode (nothing listens: unreachable)
    assert error_of(lambda: http.get(f"http://127.0.0.1:{port}/")).code == "DISC-UNREACHABLE"


# --- discovery -----------------------------------------------------------------------------


def smart_config(ehr: Ehr) -> dict[str, Any]:
    return {
        "issuer": ehr.url("/oauth2"),
        "jwks_uri": ehr.url("/oauth2/jwks"),
        "authorization_endpoint": "/oauth2/authorize",  # relative: resolved against the base
        "token_endpoint": ehr.url("/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "capabilities": ["launch-ehr", "sso-openid-connect", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }


def capability(version: str = "4.0.1", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "CapabilityStatement", "fhirVersion": version, **extra}


def test_discovery_fetches_both_documents_with_the_right_accept(ehr, http):
    ehr.routes["/fhir/.well-known/smart-configuration"] = lambda r: json_response(smart_config(ehr))
    ehr.routes["/fhir/metadata"] = lambda r: json_response(capability())
    found = discover(
        http, ehr.url("/fhir"), headers={"Epic-Client-ID": "cid"}, cache=DiscoveryCache()
    )
    assert found.fhir_version == "R4" and found.source == "smart-configuration"
    assert found.config.authorization_endpoint == ehr.url("/oauth2/authorize")
    assert found.permission_v2
    assert validate(found, "private_key_jwt", require_https=True) == []
    accept = {c.path: c.headers["Accept"] for c in ehr.calls}
    assert accept == {
        "/fhir/.well-known/smart-configuration": "application/json",
        "/fhir/metadata": "application/fhir+json",
    }
    assert all(c.headers["Epic-Client-Id"] == "cid" for c in ehr.calls)


def test_discovery_cache_is_used_until_bypassed(ehr, http):
    ehr.routes["/fhir/.well-known/smart-configuration"] = lambda r: json_response(smart_config(ehr))
    ehr.routes["/fhir/metadata"] = lambda r: json_response(capability())
    cache = DiscoveryCache()
    first = discover(http, ehr.url("/fhir"), cache=cache)
    assert discover(http, ehr.url("/fhir/"), cache=cache) is first
    assert len(ehr.calls) == 2
    fresh = discover(http, ehr.url("/fhir"), cache=cache, use_cache=False)
    assert fresh is not first and len(ehr.calls) == 4
    assert discover(http, ehr.url("/fhir"), cache=cache) is fresh


def test_discovery_falls_back_to_metadata_oauth_uris(ehr, http):
    security = {
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": ehr.url("/oauth2/authorize")},
                    {"url": "token", "valueUri": ehr.url("/oauth2/token")},
                ],
            }
        ]
    }
    ehr.routes["/fhir/metadata"] = lambda r: json_response(
        capability("1.0.2", resourceType="Conformance", rest=[{"security": security}])
    )
    found = discover(http, ehr.url("/fhir"), cache=DiscoveryCache())
    assert (found.source, found.fhir_version) == ("metadata", "DSTU2")
    assert found.config.token_endpoint == ehr.url("/oauth2/token")
    problems = [p.code for p in validate(found, "client_secret_basic", needs_openid=False)]
    assert problems == ["DISC-NO-S256", "DISC-FHIR-VERSION"]


def test_discovery_failures(ehr, http):
    base = ehr.url("/fhir")
    ehr.routes["/fhir/.well-known/smart-configuration"] = lambda r: Response("oops", 500)
    assert error_of(lambda: discover(http, base, use_cache=False)).code == "DISC-HTTP-STATUS"
    ehr.routes.clear()  # 404 and a metadata without oauth-uris
    ehr.routes["/fhir/metadata"] = lambda r: json_response(capability())
    error = error_of(lambda: discover(http, base, use_cache=False))
    assert (error.code, "oauth-uris" in error.detail) == ("DISC-HTTP-STATUS", True)
    ehr.routes["/fhir/.well-known/smart-configuration"] = lambda r: Response("<html/>")
    assert error_of(lambda: discover(http, base, use_cache=False)).code == "DISC-NOT-JSON"
    ehr.routes["/fhir/.well-known/smart-configuration"] = lambda r: json_response([1, 2])
    assert error_of(lambda: discover(http, base, use_cache=False)).code == "DISC-NOT-JSON"


def test_unreadable_metadata_leaves_the_version_unknown(ehr, http):
    ehr.routes["/fhir/.well-known/smart-configuration"] = lambda r: json_response(smart_config(ehr))
    ehr.routes["/fhir/metadata"] = lambda r: Response("no", 401)
    found = discover(http, ehr.url("/fhir"), cache=DiscoveryCache())
    assert (found.fhir_version, found.metadata_problem) == (
        "unknown",
        "/metadata answered HTTP 401",
    )
    problems = validate(found, "client_secret_basic")
    assert [p.code for p in problems] == ["DISC-FHIR-VERSION"]


# --- token endpoint ------------------------------------------------------------------------

EPIC_TOKEN = {
    "access_token": "at-123",
    "token_type": "Bearer",
    "expires_in": 3600,
    "scope": "launch openid fhirUser user/Appointment.read",
    "id_token": "x.y.z",
    "patient": "eP1",
    "appointment": "eA1",
    "need_patient_banner": "false",
}


def test_exchange_code_with_client_secret_basic(ehr, http):
    ehr.routes["/oauth2/token"] = lambda r: json_response(EPIC_TOKEN)
    token = exchange_code(
        http,
        ehr.url("/oauth2/token"),
        "the-code",
        "https://app/cb",
        "v" * 64,
        ClientSecretBasic("cid", "p@ss word"),
    )
    assert (token.access_token, token.patient, token.extras["appointment"]) == (
        "at-123",
        "eP1",
        "eA1",
    )
    assert token.need_patient_banner is False
    call = ehr.calls[0]
    assert call.method == "POST"
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://app/cb",
        "code_verifier": "v" * 64,
    }
    scheme, _, encoded = call.headers["Authorization"].partition(" ")
    raw_id, _, raw_secret = base64.b64decode(encoded).decode().partition(":")
    assert (scheme, raw_id, unquote_plus(raw_secret)) == ("Basic", "cid", "p@ss word")


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_exchange_code_with_private_key_jwt(ehr, http, alg):
    key = SigningKey.from_pem(generate_rsa_pem() if alg == "RS384" else generate_ec_pem())
    token_url = ehr.url("/oauth2/token")
    seen: dict[str, Any] = {}

    def token_endpoint(request: Request) -> Response:
        assertion = request.form["client_assertion"]
        public = jwt.PyJWK(key.public_jwk()).key
        seen.update(jwt.decode(assertion, public, algorithms=[alg], audience=token_url))
        seen["type"] = request.form["client_assertion_type"]
        return json_response(EPIC_TOKEN)

    ehr.routes["/oauth2/token"] = token_endpoint
    exchange_code(http, token_url, "c", "https://app/cb", "v" * 64, PrivateKeyJwt("cid", key))
    assert seen["iss"] == seen["sub"] == "cid" and seen["type"] == ASSERTION_TYPE
    assert "Authorization" not in ehr.calls[0].headers


def test_token_error_names_only_the_oauth_code(ehr, http):
    ehr.routes["/oauth2/token"] = lambda r: json_response(
        {"error": "invalid_grant", "error_description": "code abc-secret-123 expired"}, 400
    )
    error = error_of(
        lambda: exchange_code(
            http,
            ehr.url("/oauth2/token"),
            "abc-secret-123",
            "https://app/cb",
            "v" * 64,
            ClientSecretBasic("cid", "s"),
        )
    )
    assert (error.code, error.detail) == ("TOKEN-EXCHANGE-FAILED", "invalid_grant (HTTP 400)")


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (lambda: Response("<html/>", 200, mimetype="text/html"), "not JSON"),
        (lambda: json_response({"token_type": "Bearer"}), "no access_token"),
        (lambda: Response("bad gateway", 502), "HTTP 502"),
    ],
)
def test_token_endpoint_failures(ehr, http, response, detail):
    ehr.routes["/oauth2/token"] = lambda r: response()
    error = error_of(
        lambda: exchange_code(
            http,
            ehr.url("/oauth2/token"),
            "c",
            "https://app/cb",
            "v" * 64,
            ClientSecretBasic("cid", "s"),
        )
    )
    assert error.code == "TOKEN-EXCHANGE-FAILED" and detail in error.detail


def test_token_call_honours_retry_after(ehr, http, sleeps):
    ehr.routes["/oauth2/token"] = sequence(
        lambda: json_response({"error": "temporarily_unavailable"}, 429, **{"Retry-After": "1"}),
        lambda: json_response(EPIC_TOKEN),
    )
    token = exchange_code(
        http,
        ehr.url("/oauth2/token"),
        "c",
        "https://app/cb",
        "v" * 64,
        ClientSecretBasic("cid", "s"),
    )
    assert token.access_token == "at-123" and sleeps == [1.0]


def test_retried_client_assertion_gets_a_fresh_jti(ehr, http, sleeps):
    ehr.routes["/oauth2/token"] = sequence(
        lambda: Response("busy", 503, headers={"Retry-After": "0"}),
        lambda: json_response(EPIC_TOKEN),
    )
    key = SigningKey.from_pem(generate_ec_pem())
    exchange_code(
        http, ehr.url("/oauth2/token"), "c", "https://app/cb", "v" * 64, PrivateKeyJwt("cid", key)
    )
    jtis = {
        jwt.decode(c.form["client_assertion"], options={"verify_signature": False})["jti"]
        for c in ehr.calls
    }
    assert len(ehr.calls) == 2 and len(jtis) == 2 and sleeps == [0.0]
    assert ehr.calls[0].form["code"] == ehr.calls[1].form["code"] == "c"


def test_token_url_outside_the_pin(ehr, http):
    error = error_of(
        lambda: exchange_code(
            http,
            ehr.url("/oauth2/token"),
            "c",
            "https://app/cb",
            "v" * 64,
            ClientSecretBasic("cid", "s"),
            allowed_hosts={"ehr.example.org"},
        )
    )
    assert error.code == "DISC-HOSTS-MOVED" and ehr.calls == []


def test_backend_services_token_is_cached_until_shortly_before_expiry(ehr, http):
    key = SigningKey.from_pem(generate_ec_pem())
    ehr.routes["/oauth2/token"] = lambda r: json_response(
        {"access_token": f"bt-{len(ehr.calls)}", "expires_in": 300, "scope": r.form["scope"]}
    )
    now = [1_000.0]
    cache = BackendTokenCache(clock=lambda: now[0])
    auth = PrivateKeyJwt("cid", key)
    token_url = ehr.url("/oauth2/token")
    scopes = ["system/Appointment.rs", "system/Appointment.u"]
    first = cache.get(http, token_url, scopes, auth)
    assert cache.get(http, token_url, list(reversed(scopes)), auth) is first
    assert ehr.calls[0].form["grant_type"] == "client_credentials"
    assert ehr.calls[0].form["scope"] == "system/Appointment.rs system/Appointment.u"
    now[0] += 239  # 300 s token, 60 s margin
    assert cache.get(http, token_url, scopes, auth) is first
    now[0] += 2
    second = cache.get(http, token_url, scopes, auth)
    assert second.access_token != first.access_token
    cache.invalidate(token_url, "cid", scopes)
    assert cache.get(http, token_url, scopes, auth).access_token not in {
        first.access_token,
        second.access_token,
    }
    assert len(ehr.calls) == 3


def test_client_credentials_form(ehr, http):
    ehr.routes["/oauth2/token"] = lambda r: json_response({"access_token": "bt"})
    key = SigningKey.from_pem(generate_ec_pem())
    client_credentials(
        http, ehr.url("/oauth2/token"), ["system/Appointment.rs"], PrivateKeyJwt("cid", key)
    )
    form = ehr.calls[0].form
    assert set(form) == {"grant_type", "scope", "client_assertion_type", "client_assertion"}


# --- id_token --------------------------------------------------------------------------------


@dataclass
class IssuerKey:
    private: Any
    kid: str | None

    def jwk(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid} if self.kid else jwk

    def mint(self, ehr: Ehr, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ehr.url("/oauth2"),
            "sub": "u1",
            "aud": "cid",
            "iat": now,
            "exp": now + 300,
            "nonce": "n1",
            "fhirUser": ehr.url("/fhir/Practitioner/pr1"),
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}  # None removes a claim
        headers = {"kid": self.kid} if self.kid else {}
        return jwt.encode(body, self.private, algorithm="RS256", headers=headers)


@pytest.fixture(scope="module")
def issuer_keys() -> list[IssuerKey]:
    return [
        IssuerKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), f"k{i}")
        for i in (1, 2)
    ]


@pytest.fixture
def published(ehr) -> list[dict[str, Any]]:
    """The JWKS the server serves right now (tests change it to rotate keys)."""
    keys: list[dict[str, Any]] = []
    ehr.routes["/oauth2/.well-known/openid-configuration"] = lambda r: json_response(
        {"issuer": ehr.url("/oauth2"), "jwks_uri": ehr.url("/oauth2/jwks")}
    )
    ehr.routes["/oauth2/jwks"] = lambda r: json_response({"keys": keys})
    return keys


def verifier(http: OutboundHttp, min_refresh: float = 0.0) -> IdTokenVerifier:
    return IdTokenVerifier(http, jwks_cache=JwksCache(http, min_refresh_seconds=min_refresh))


def test_id_token_via_openid_configuration_then_cached(ehr, http, published, issuer_keys):
    published.append(issuer_keys[0].jwk())
    check = verifier(http)
    claims = check.verify(
        issuer_keys[0].mint(ehr), client_id="cid", nonce="n1", issuer=ehr.url("/oauth2")
    )
    assert claims["sub"] == "u1"
    check.verify(issuer_keys[0].mint(ehr), client_id="cid", nonce="n1", issuer=ehr.url("/oauth2/"))
    assert ehr.paths() == ["/oauth2/.well-known/openid-configuration", "/oauth2/jwks"]


def test_key_rotation_refreshes_the_jwks_once(ehr, http, published, issuer_keys):
    old, new = issuer_keys
    published.append(old.jwk())
    check = verifier(http)
    options = {
        "client_id": "cid",
        "nonce": "n1",
        "issuer": ehr.url("/oauth2"),
        "jwks_uri": ehr.url("/oauth2/jwks"),
    }
    check.verify(old.mint(ehr), **options)
    published[:] = [new.jwk()]  # the EHR rotated its key
    assert check.verify(new.mint(ehr), **options)["sub"] == "u1"
    assert ehr.paths() == ["/oauth2/jwks", "/oauth2/jwks"]
    error = error_of(lambda: check.verify(old.mint(ehr), **options))  # retired key
    assert (error.code, error.detail) == ("TOKEN-ID-TOKEN-INVALID", "unknown key")
    assert ehr.paths().count("/oauth2/jwks") == 3  # one refresh per unknown kid, no loop


def test_refresh_is_rate_limited(ehr, http, published, issuer_keys):
    published.append(issuer_keys[0].jwk())
    check = verifier(http, min_refresh=60)
    options = {
        "client_id": "cid",
        "nonce": "n1",
        "jwks_uri": ehr.url("/oauth2/jwks"),
        "issuer": ehr.url("/oauth2"),
    }
    check.verify(issuer_keys[0].mint(ehr), **options)
    for _ in range(3):
        error = error_of(lambda: check.verify(issuer_keys[1].mint(ehr), **options))
        assert error.detail == "unknown key"
    assert ehr.paths() == ["/oauth2/jwks"]


def test_token_and_keys_without_kid(ehr, http, published, issuer_keys):
    bare = [IssuerKey(k.private, None) for k in issuer_keys]
    published.extend(k.jwk() for k in bare)
    claims = verifier(http).verify(
        bare[1].mint(ehr), client_id="cid", nonce="n1", issuer=ehr.url("/oauth2")
    )
    assert claims["sub"] == "u1"


def test_issuer_from_the_token_only_when_its_host_is_pinned(ehr, http, published, issuer_keys):
    published.append(issuer_keys[0].jwk())
    token = issuer_keys[0].mint(ehr)
    pinned = {host_of(ehr.base)}
    claims = verifier(http).verify(token, client_id="cid", nonce="n1", pinned_hosts=pinned)
    assert claims["iss"] == ehr.url("/oauth2")
    error = error_of(
        lambda: verifier(http).verify(
            token, client_id="cid", nonce="n1", pinned_hosts={"ehr.example.org"}
        )
    )
    assert error.detail == "issuer"
    error = error_of(
        lambda: verifier(http).verify(
            token, client_id="cid", nonce="n1", issuer="https://ehr.example.org/oauth2"
        )
    )
    assert error.detail == "issuer"


@pytest.mark.parametrize(
    ("claims", "nonce", "reason"),
    [
        ({}, "other-nonce", "nonce"),
        ({"nonce": None}, "n1", "nonce"),
        ({"aud": "someone-else"}, "n1", "audience"),
        ({"aud": ["cid", "other"], "azp": "other"}, "n1", "audience"),
        ({"exp": int(time.time()) - 3600}, "n1", "expired"),
    ],
)
def test_id_token_claim_failures(ehr, http, published, issuer_keys, claims, nonce, reason):
    published.append(issuer_keys[0].jwk())
    token = issuer_keys[0].mint(ehr, **claims)
    error = error_of(
        lambda: verifier(http).verify(
            token, client_id="cid", nonce=nonce, issuer=ehr.url("/oauth2")
        )
    )
    assert (error.code, error.detail) == ("TOKEN-ID-TOKEN-INVALID", reason)


def test_jwks_endpoint_failures(ehr, http, issuer_keys):
    ehr.routes["/oauth2/jwks"] = lambda r: Response("down", 500)
    options = {
        "client_id": "cid",
        "nonce": "n1",
        "issuer": ehr.url("/oauth2"),
        "jwks_uri": ehr.url("/oauth2/jwks"),
    }
    error = error_of(lambda: verifier(http).verify(issuer_keys[0].mint(ehr), **options))
    assert (error.code, error.detail) == ("TOKEN-ID-TOKEN-INVALID", "jwks answered HTTP 500")
    ehr.routes["/oauth2/jwks"] = lambda r: Response("<html/>", mimetype="text/html")
    error = error_of(lambda: verifier(http).verify(issuer_keys[0].mint(ehr), **options))
    assert error.code == "TOKEN-ID-TOKEN-INVALID"


@pytest.mark.parametrize(
    "answer",
    [["93.184.216.34"], ["10.1.2.3"], ["127.0.0.1", "93.184.216.34"], ["::ffff:8.8.8.8"]],
)
def test_local_mode_reaches_only_this_machine(answer):
    """A local run (and the tests' fuzzed endpoints) never talks to the network."""
    with OutboundHttp(local_mode=True, resolver=lambda host, port: answer) as client:
        error = error_of(lambda: client.get("http://ehr.example.org/fhir/metadata"))
        assert error.code == "DISC-ADDRESS-NOT-ALLOWED" and "loopback" in error.detail
    with OutboundHttp(local_mode=True) as client:  # an IP literal: no resolver involved
        assert error_of(lambda: client.get("https://93.184.216.34/")).code == (
            "DISC-ADDRESS-NOT-ALLOWED"
        )


# --- the deadline holds on the socket ------------------------------------------------------------
class Trickler:
    """A loopback HTTP server that answers one byte every `gap` seconds, forever (bounded)."""

    def __init__(self, head: bytes, gap: float = 0.1, limit: float = 10.0) -> None:
        import socket
        import threading

        self.head, self.gap, self.limit = head, gap, limit
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        started = time.monotonic()
        with conn:
            conn.recv(65536)
            try:
                for byte in iter(lambda: self.head[:1] or b"x", b""):
                    if time.monotonic() - started > self.limit:
                        return
                    conn.sendall(byte)
                    self.head = self.head[1:]
                    time.sleep(self.gap)
            except OSError:
                return  # the client hung up: what the test wants

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200,  # headers that never end
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",  # a body that never ends
    ],
    ids=["headers", "body"],
)
def test_a_server_trickling_bytes_cannot_hold_a_call_past_its_deadline(head):
    slow = Trickler(head)
    try:
        with OutboundHttp(local_mode=True, total_timeout=1.0, read_timeout=5.0) as client:
            started = time.monotonic()
            error = error_of(lambda: client.get(f"http://127.0.0.1:{slow.port}/metadata"))
            took = time.monotonic() - started
        assert error.code == "DISC-UNREACHABLE" and "too slow" in error.detail
        assert took < 4.0  # the 1 s deadline, not the 10 s the server would take, nor hours
    finally:
        slow.close()
