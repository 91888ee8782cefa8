"""Entra's authorize endpoint: the client and redirect URI checked before anything is sent back,
then the demo-user picker (or prompt=none) and the code, in the response mode asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox import directory, oauth
from dev.sandbox.directory import (
    USERS,
    AppRegistration,
    DemoUser,
)
from dev.sandbox.entra import pages, tokens
from dev.sandbox.entra.errors import OAuthError, from_problem, unknown_tenant
from dev.sandbox.oauth import OAuthProblem
from dev.sandbox.standin import html_response

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


@dataclass
class AuthRequest:
    """An authorize request waiting for the person to pick who they are."""

    app: AppRegistration
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    response_mode: str


@dataclass
class CodeGrant:
    """What an Entra code stands for."""

    user: DemoUser
    scope: str
    nonce: str | None


class AuthorizeSurface:
    """Mixed into EntraStandIn."""

    # -- authorize -----------------------------------------------------------------------------
    def authorize(self, request: Request, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return _error_page(unknown_tenant(tenant))
        if request.method == "POST" and "request_id" in request.form:
            return self._signed_in(request)
        params = request.args if request.method == "GET" else request.form
        try:
            app, redirect_uri = self._check_client_and_redirect(params)
        except OAuthError as exc:
            return _error_page(exc)  # never redirect to an unverified address
        state = params.get("state")
        mode = params.get("response_mode", "query")
        try:
            pending = self._check_authorize(params, app, redirect_uri)
        except OAuthError as exc:
            return _redirect_result(redirect_uri, mode, _error_params(exc, state))
        return self._sign_in_or_prompt_none(params, pending)

    def _check_client_and_redirect(self, params: Any) -> tuple[AppRegistration, str]:
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{params.get('client_id')}' was "
                "not found in the directory.",
            )
        redirect_uri = params.get("redirect_uri", "")
        if not _redirect_allowed(app, redirect_uri):
            raise OAuthError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does "
                f"not match the redirect URIs configured for '{app.client_id}'.",
            )
        return app, redirect_uri

    def _check_authorize(self, params: Any, app: AppRegistration, redirect_uri: str) -> AuthRequest:
        if params.get("response_type") != "code":
            raise OAuthError(
                400,
                "unsupported_response_type",
                700054,
                "The sandbox supports response_type 'code' only.",
            )
        challenge = params.get("code_challenge", "")
        try:
            # Entra: PKCE is required unless a test switched require_pkce off.
            oauth.check_pkce_request(
                challenge, params.get("code_challenge_method"), self.require_pkce
            )
        except OAuthProblem as exc:
            raise from_problem(exc) from None
        scope = params.get("scope", "")
        tokens.parse_delegated_scope(scope)  # reject bad scopes now, as Entra does
        return AuthRequest(
            app=app,
            redirect_uri=redirect_uri,
            scope=scope,
            state=params.get("state"),
            nonce=params.get("nonce"),
            code_challenge=challenge,
            response_mode=params.get("response_mode", "query"),
        )

    def _sign_in_or_prompt_none(self, params: Any, pending: AuthRequest) -> Response:
        hint = directory.user(params.get("login_hint", "") or "")
        if params.get("prompt") == "none":
            if hint is None:
                err = OAuthError(
                    400,
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                )
                return _redirect_result(
                    pending.redirect_uri, pending.response_mode, _error_params(err, pending.state)
                )
            return self._issue_code(pending, hint)
        request_id = self.authorizations.hold(pending)
        page = pages.sign_in_page(
            action=urlsplit(self.authorization_endpoint).path,
            request_id=request_id,
            app_name=pending.app.display_name,
            users=USERS,
            hint=hint.key if hint else None,
        )
        return html_response(page)

    def _signed_in(self, request: Request) -> Response:
        pending = self.authorizations.take(request.form["request_id"])
        if pending is None:
            return _error_page(
                OAuthError(
                    400,
                    "invalid_request",
                    50196,
                    "This sign-in request expired or was already used; start again from the app.",
                )
            )
        person = directory.user(request.form.get("user", ""))
        if person is None:
            return _error_page(
                OAuthError(
                    400, "invalid_request", 50034, "That user account does not exist in the tenant."
                )
            )
        return self._issue_code(pending, person)

    def _issue_code(self, pending: AuthRequest, person: DemoUser) -> Response:
        code = self.authorizations.issue(
            CodeGrant(person, pending.scope, pending.nonce),
            pending.app.client_id,
            pending.redirect_uri,
            pending.code_challenge,
            self.code_lifetime,
        )
        params = oauth.code_params(code, pending.state)
        return _redirect_result(pending.redirect_uri, pending.response_mode, params)

    def logout(self, request: Request, tenant: str) -> Response:
        target = request.values.get("post_logout_redirect_uri", "")
        if target and urlsplit(target).hostname in LOOPBACK_HOSTS:
            return redirect(target, 302)
        return html_response(pages.signed_out_page())


def _redirect_allowed(app: AppRegistration, uri: str) -> bool:
    if not uri:
        return False
    if uri in app.redirect_uris:
        return True
    parts = urlsplit(uri)
    return (
        app.allow_loopback_redirects
        and parts.scheme in ("http", "https")
        and parts.hostname in LOOPBACK_HOSTS
        and not parts.fragment
    )


def _redirect_result(redirect_uri: str, mode: str, params: dict[str, str]) -> Response:
    """Entra answers in the response_mode asked for: query, fragment or form_post."""
    return oauth.redirect_to_client(redirect_uri, params, mode, pages.form_post_page)


def _error_params(exc: OAuthError, state: str | None) -> dict[str, str]:
    """Entra keeps an empty state (only a missing one is left out)."""
    return oauth.error_params(exc.error, f"AADSTS{exc.code}: {exc.description}", state)


def _error_page(exc: OAuthError) -> Response:
    return html_response(pages.error_page(exc.code, exc.description), exc.status)
