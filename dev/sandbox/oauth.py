"""The OAuth 2.0 authorization-server core the sign-in stand-ins share (Entra ID and the SMART
EHRs): pending authorize requests, single-use authorization codes, PKCE S256 (RFC 7636) and the
RFC 6749 answers (redirects back to the client, error parameters, token JSON).

The core decides; each stand-in words. Every refusal is a ``Problem`` that carries its RFC 6749
``error`` code; the stand-in turns it into its own error (Entra: an AADSTS number and sentence,
SMART: a description, and Cerner's ``error_uri``). Where the two differ on purpose the call says so
with a parameter: ``require_pkce`` (Entra can be told not to require it), ``require_verifier``
(SMART asks every code for a verifier, Entra only codes bound to a challenge), ``mode`` (Entra
speaks query, fragment and form_post; the EHRs query only).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from dev.sandbox.standin import html_response, json_response

CODE_LIFETIME = 60  # seconds; Entra's and the EHRs' codes live about a minute
SIGN_IN_LIFETIME = 600  # a person may take a while to pick a user
# Used codes stay a while past expiry, so a replay reads "already used", not "not valid".
REPLAY_MEMORY = 600
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
S256 = "S256"
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class Problem(enum.Enum):
    """Why the core refused, with the RFC 6749 ``error`` code it means."""

    CHALLENGE_MISSING = ("challenge_missing", "invalid_request")
    METHOD_NOT_S256 = ("method_not_s256", "invalid_request")
    CODE_UNKNOWN = ("code_unknown", "invalid_grant")
    CODE_USED = ("code_used", "invalid_grant")
    CODE_EXPIRED = ("code_expired", "invalid_grant")
    CODE_OTHER_CLIENT = ("code_other_client", "invalid_grant")
    REDIRECT_MISMATCH = ("redirect_mismatch", "invalid_grant")
    VERIFIER_MISSING = ("verifier_missing", "invalid_request")
    VERIFIER_MISMATCH = ("verifier_mismatch", "invalid_grant")

    @property
    def error(self) -> str:
        return self.value[1]


class OAuthProblem(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.name)
        self.problem = problem


# -- PKCE (RFC 7636) ---------------------------------------------------------------------------


def s256(verifier: str) -> str:
    """The S256 code_challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_verifier(verifier: str) -> bool:
    """43 to 128 unreserved characters (RFC 7636 section 4.1)."""
    return 43 <= len(verifier) <= 128 and set(verifier) <= _VERIFIER_CHARS


def check_pkce_request(challenge: str, method: str | None, require_pkce: bool = True) -> None:
    """The authorize request's PKCE: S256 only (a challenge without a method means 'plain',
    refused too); without a challenge, refused when PKCE is required."""
    if not challenge:
        if require_pkce:
            raise OAuthProblem(Problem.CHALLENGE_MISSING)
        return
    if method != S256:
        raise OAuthProblem(Problem.METHOD_NOT_S256)


def check_verifier(challenge: str, verifier: str | None, require_verifier: bool = True) -> None:
    """The token request's code_verifier against the challenge the code was issued for."""
    if not challenge and not require_verifier:
        return
    if not verifier:
        raise OAuthProblem(Problem.VERIFIER_MISSING)
    if not valid_verifier(verifier) or s256(verifier) != challenge:
        raise OAuthProblem(Problem.VERIFIER_MISMATCH)


# -- pending requests and codes ------------------------------------------------------------------

P = TypeVar("P")  # what a stand-in keeps while the person signs in
G = TypeVar("G")  # what a code stands for


@dataclass
class _Pending(Generic[P]):
    request: P
    expires_at: float


@dataclass
class Code(Generic[G]):
    """An authorization code: single use, bound to its client, redirect URI and challenge."""

    grant: G
    client_id: str
    redirect_uri: str
    code_challenge: str
    expires_at: float
    used: bool = False


class AuthorizationStore(Generic[P, G]):
    """Authorize requests waiting at a sign-in page, and the codes issued for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending[P]] = {}
        self._codes: dict[str, Code[G]] = {}

    def reset(self) -> None:
        with self._lock:
            self._pending, self._codes = {}, {}

    def _purge(self, now: float) -> None:
        self._pending = {k: v for k, v in self._pending.items() if v.expires_at > now}
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at + REPLAY_MEMORY > now}

    def hold(self, request: P, lifetime: float = SIGN_IN_LIFETIME) -> str:
        """Keep a request for the sign-in page; returns the id the page posts back."""
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._purge(time.time())
            self._pending[request_id] = _Pending(request, time.time() + lifetime)
        return request_id

    def take(self, request_id: str) -> P | None:
        """The held request, once; None when unknown, expired or already taken."""
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None or pending.expires_at < time.time():
            return None
        return pending.request

    def issue(
        self, grant: G, client_id: str, redirect_uri: str, code_challenge: str, lifetime: float
    ) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = Code(
                grant, client_id, redirect_uri, code_challenge, time.time() + lifetime
            )
        return code

    def redeem(
        self,
        value: str,
        client_id: str,
        redirect_uri: str,
        verifier: str | None,
        require_verifier: bool = True,
    ) -> G:
        """What the code stands for, once. Checked in this order: known, unused, unexpired,
        this client's, the same redirect URI, then PKCE; a failed check does not burn it."""
        with self._lock:
            code = self._codes.get(value)
            if code is None:
                raise OAuthProblem(Problem.CODE_UNKNOWN)
            if code.used:
                raise OAuthProblem(Problem.CODE_USED)
            if code.expires_at < time.time():
                raise OAuthProblem(Problem.CODE_EXPIRED)
            if code.client_id != client_id:
                raise OAuthProblem(Problem.CODE_OTHER_CLIENT)
            if redirect_uri != code.redirect_uri:
                raise OAuthProblem(Problem.REDIRECT_MISMATCH)
            check_verifier(code.code_challenge, verifier, require_verifier)
            code.used = True
            return code.grant


# -- answers (RFC 6749 sections 4.1.2, 4.1.2.1 and 5) --------------------------------------------


def with_query(url: str, params: Mapping[str, str]) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}{urlencode(params)}"


def code_params(code: str, state: str | None) -> dict[str, str]:
    params = {"code": code}
    if state is not None:
        params["state"] = state
    return params


def error_params(
    error: str, description: str, state: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``error``, ``error_description`` (and ``extra``, e.g. ``error_uri``), then ``state``."""
    params = {"error": error, "error_description": description, **(extra or {})}
    if state is not None:
        params["state"] = state
    return params


def redirect_to_client(
    redirect_uri: str,
    params: Mapping[str, str],
    mode: str = "query",
    form_post_page: Callable[[str, Mapping[str, str]], str] | None = None,
) -> Response:
    """Back to a redirect URI already checked against the client's registration."""
    if mode == "form_post" and form_post_page is not None:
        return html_response(form_post_page(redirect_uri, params))
    if mode == "fragment":
        return redirect(f"{redirect_uri}#{urlencode(params)}", 302)
    return redirect(with_query(redirect_uri, params), 302)


def token_json(body: dict[str, Any]) -> Response:
    return json_response(body, headers=NO_STORE)


def error_json(body: dict[str, Any], status: int, www_authenticate: str | None = None) -> Response:
    headers = dict(NO_STORE)
    if www_authenticate is not None:
        headers["WWW-Authenticate"] = www_authenticate
    return json_response(body, status, headers)
