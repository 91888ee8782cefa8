"""Misbehaving FHIR servers, for the connector's endpoint-validation tests (F2).

Each variant is a FHIR base of its own: ``{ehr}/variant/{kind}{normal FHIR path}``, e.g.
``https://127.0.0.2:7444/epic/variant/no-s256/api/FHIR/R4`` or
``https://127.0.0.3:7445/cerner/variant/http-500/r4/{tenant}``. Only the two discovery documents
(``.well-known/smart-configuration`` and ``metadata``) misbehave; FHIR reads, authorize (``aud``
may be a variant base) and token work as usual, so a valid variant (``moved-hosts``) can launch.

``expect`` names the catalogue code our endpoint validation should report (documentation for
the tests that use these bases; the sandbox checks nothing itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

Doc = dict[str, Any]


@dataclass(frozen=True)
class VariantContext:
    """What a variant may need from the EHR that serves it."""

    port: int  # where the other host name answers: the control origin's port
    normal_url: str  # the same document at the normal base
    slow_seconds: float


@dataclass(frozen=True)
class Variant:
    kind: str
    summary: str
    expect: str
    # Changes the smart-configuration (the metadata's oauth-uris follow the changed document).
    edit: Callable[[Doc, VariantContext], Doc] | None = None
    # Replaces the answer to both documents: (status, headers, body bytes); `sleep` first.
    answer: Callable[[VariantContext], tuple[int, dict[str, str], bytes]] | None = None
    sleep: bool = False


def _without(*names: str) -> Callable[[Doc, VariantContext], Doc]:
    def edit(doc: Doc, ctx: VariantContext) -> Doc:
        return {k: v for k, v in doc.items() if k not in names}

    return edit


def _set(**values: Any) -> Callable[[Doc, VariantContext], Doc]:
    def edit(doc: Doc, ctx: VariantContext) -> Doc:
        return {**doc, **values}

    return edit


def _no_openid(doc: Doc, ctx: VariantContext) -> Doc:
    gone = {"openid", "fhirUser", "profile"}
    edited = {k: v for k, v in doc.items() if k not in ("issuer", "jwks_uri")}
    edited["capabilities"] = [c for c in doc["capabilities"] if c != "sso-openid-connect"]
    edited["scopes_supported"] = [s for s in doc["scopes_supported"] if s not in gone]
    return edited


def _moved_hosts(doc: Doc, ctx: VariantContext) -> Doc:
    return {
        **doc,
        "authorization_endpoint": move_host(doc["authorization_endpoint"], "localhost", ctx.port),
        "token_endpoint": move_host(doc["token_endpoint"], "localhost", ctx.port),
    }


def move_host(url: str, host: str, port: int) -> str:
    """``https://127.0.0.N:P/x`` -> ``https://{host}:{port}/x``: with ``localhost`` and the control
    origin's port, the other host name on which every stand-in also answers (server.py)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, parts.fragment))


def _html(ctx: VariantContext) -> tuple[int, dict[str, str], bytes]:
    page = (
        "<!doctype html><html><head><title>Sign in</title></head><body>"
        "<h1>Portal maintenance</h1><p>This is a web page, not a FHIR server.</p></body></html>"
    )
    return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()


def _http_500(ctx: VariantContext) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": "server_error", "message": "Internal Server Error"}).encode()
    return 500, {"Content-Type": "application/json"}, body


def _redirect(ctx: VariantContext) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": move_host(ctx.normal_url, "localhost", ctx.port)}, b""


HUGE_BYTES = 2 * 1024 * 1024


def _huge(ctx: VariantContext) -> tuple[int, dict[str, str], bytes]:
    filler = "x" * 1024
    doc = {"padding": [filler] * (HUGE_BYTES // (len(filler) + 3) + 1)}
    return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()


VARIANTS: dict[str, Variant] = {
    v.kind: v
    for v in (
        Variant(
            "no-s256",
            "code_challenge_methods_supported missing (no S256)",
            "DISC-NO-S256",
            edit=_without("code_challenge_methods_supported"),
        ),
        Variant(
            "plain",
            "code_challenge_methods_supported: [S256, plain]",
            "DISC-PLAIN-PKCE",
            edit=_set(code_challenge_methods_supported=["S256", "plain"]),
        ),
        Variant(
            "no-token-endpoint",
            "no token_endpoint (nor oauth-uris token in metadata)",
            "DISC-MISSING-TOKEN-ENDPOINT",
            edit=_without("token_endpoint"),
        ),
        Variant(
            "no-authorize-endpoint",
            "no authorization_endpoint (nor oauth-uris authorize in metadata)",
            "DISC-MISSING-AUTHORIZE-ENDPOINT",
            edit=_without("authorization_endpoint"),
        ),
        Variant(
            "not-json",
            "an HTML page with HTTP 200 for both documents",
            "DISC-NOT-JSON",
            answer=_html,
        ),
        Variant("http-500", "HTTP 500 for both documents", "DISC-HTTP-STATUS", answer=_http_500),
        Variant(
            "redirect-other-host",
            "302 to the same document on https://localhost:{port} (another host name)",
            "DISC-REDIRECT",
            answer=_redirect,
        ),
        Variant(
            "no-openid",
            "no sso-openid-connect capability, no openid scope, no issuer / jwks_uri",
            "DISC-NO-OPENID",
            edit=_no_openid,
        ),
        Variant(
            "no-auth-methods",
            'token_endpoint_auth_methods_supported: ["private_key_jwt"] only',
            "DISC-NO-CLIENT-AUTH (for client_secret_basic)",
            edit=_set(token_endpoint_auth_methods_supported=["private_key_jwt"]),
        ),
        Variant(
            "huge",
            "a 2 MB JSON document",
            "DISC-TOO-LARGE",
            answer=_huge,
        ),
        Variant(
            "moved-hosts",
            "valid, but authorize and token on https://localhost:{port}, not the EHR's address",
            "DISC-HOSTS-MOVED (once pinned to the EHR's own address)",
            edit=_moved_hosts,
        ),
        Variant(
            "second-base",
            "valid and unchanged: a second FHIR base of the same server (e.g. for registering it "
            "under another vendor profile, such as the generic SMART one)",
            "nothing: the endpoint validates",
        ),
        Variant(
            "slow",
            "valid, answers after quirks['slow_seconds'] (default 12 s)",
            "DISC-UNREACHABLE (timeout)",
            sleep=True,
        ),
    )
}
