"""How the connector authenticates to an endpoint's token URL, from the endpoint's settings."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from lib.admin.models import ClientSecretBasic, EndpointRecord
from lib.sessions import SignInSession
from lib.settings import setting_value
from lib.smart.client_auth import ClientAuth
from lib.smart.http import OutboundHttp
from lib.smart.id_token import IdTokenVerifier
from lib.smart.keys import KeySet, SigningKey
from lib.smart.tokens import TokenResponse, exchange_code
from lib.web.errors import AppError


class OAuthServer(Protocol):
    """Where a code is redeemed: a discovery document, or what validation recorded of it."""

    token_endpoint: str | None
    issuer: str | None
    jwks_uri: str | None


def key_for(keys: KeySet | None, alg: str) -> SigningKey | None:
    """Our signing key for an algorithm (RS384 or ES384), or None."""
    return next((k for k in keys.keys if k.alg == alg), None) if keys else None


def client_auth_for(record: EndpointRecord, keys: KeySet | None) -> ClientAuth:
    from lib.smart import client_auth

    auth = record.client_auth
    if isinstance(auth, ClientSecretBasic):
        secret = setting_value(auth.secret_setting)
        if not secret:
            raise AppError("CFG-SECRET-SETTING-MISSING", f"{auth.secret_setting} is not set.")
        return client_auth.ClientSecretBasic(record.client_id, secret)
    key = key_for(keys, auth.alg)
    if key is None:
        raise AppError("CFG-SIGNING-KEY-MISSING", f"No {auth.alg} key is configured.")
    return client_auth.PrivateKeyJwt(record.client_id, key)


def redeem_code(
    http: OutboundHttp,
    id_tokens: IdTokenVerifier,
    keys: KeySet | None,
    record: EndpointRecord,
    server: OAuthServer,
    hosts: Collection[str] | None,
    session: SignInSession,
    code: str,
) -> tuple[TokenResponse, dict[str, Any]]:
    """The EHR's tokens for `code` and the verified id_token claims (launches and approvals)."""
    token = exchange_code(
        http,
        server.token_endpoint,
        code,
        session.redirect_uri,
        session.code_verifier,
        client_auth_for(record, keys),
        allowed_hosts=hosts,
    )
    if not token.id_token:
        raise AppError("TOKEN-ID-TOKEN-INVALID", "The EHR returned no id_token.")
    claims = id_tokens.verify(
        token.id_token,
        client_id=record.client_id,
        nonce=session.nonce,
        issuer=server.issuer,
        jwks_uri=server.jwks_uri,
        pinned_hosts=hosts,
    )
    return token, claims
