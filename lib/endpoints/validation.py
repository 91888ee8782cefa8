"""Endpoint validation (F2): fetch discovery now and say precisely what makes it unusable."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lib.endpoints.client import key_for
from lib.endpoints.models import (
    ClientSecretBasicConfig,
    Endpoint,
    PrivateKeyJwtConfig,
    Validation,
    ValidationProblem,
)
from lib.endpoints.secrets import SECRET_SETTING, SecretBindings
from lib.endpoints.writeback_check import writeback_problems
from lib.net.http import OutboundHttp
from lib.smart.discovery import discover, validate
from lib.smart.keys import KeySet
from lib.web.errors import CATALOGUE, AppError


def _problem(code: str, message: str | None = None) -> ValidationProblem:
    return ValidationProblem(code=code, message=message or CATALOGUE[code].sentence)


def _credential_problems(
    endpoint: Endpoint,
    keys: KeySet | None,
    token_host: str | None,
    secrets: SecretBindings,
    actor_oid: str,
) -> list[ValidationProblem]:
    """What stops us authenticating at the token endpoint. Whether a named app setting exists
    is never said: the answer would tell an admin which settings the deployment has."""
    auth = endpoint.client_auth
    if isinstance(auth, ClientSecretBasicConfig):
        if not re.fullmatch(SECRET_SETTING, auth.secret_setting):
            return [_problem("CFG-SECRET-NAME-REFUSED")]
        refused = secrets.check(auth.secret_setting, token_host, actor_oid) if token_host else None
        return [_problem("CFG-SECRET-HOST-UNAPPROVED", refused)] if refused else []
    if isinstance(auth, PrivateKeyJwtConfig) and (key_for(keys, auth.alg) is None):
        return [
            _problem("CFG-SIGNING-KEY-MISSING", f"No {auth.alg} key in CONNECTOR_SIGNING_KEYS.")
        ]
    return []


def _declares_iss(conf: object) -> bool:
    """RFC 9207's flag, from the discovery document's extra fields."""
    return getattr(conf, "authorization_response_iss_parameter_supported", None) is True


def validate_endpoint(
    endpoint: Endpoint,
    http: OutboundHttp,
    keys: KeySet | None,
    secrets: SecretBindings,
    actor_oid: str,
) -> Validation:
    """`actor_oid`: who asked (an unbound secret host is recorded as their request)."""
    now = datetime.now(UTC)
    try:
        found = discover(http, endpoint.fhir_base_url, use_cache=False)
    except AppError as err:
        return Validation(checked_at=now, ok=False, problems=[_problem(err.code, err.detail)])
    auth = endpoint.client_auth
    alg = auth.alg if isinstance(auth, PrivateKeyJwtConfig) else None
    problems = [
        _problem(p.code, p.message)
        for p in validate(found, auth.method, signing_alg=alg, require_https=not http.local_mode)
    ]
    conf = found.config
    token_host = found.hosts.token if not problems else None  # bind only a usable server
    problems += _credential_problems(endpoint, keys, token_host, secrets, actor_oid)
    if not problems:  # a backend token is asked for only from a usable, pinned server
        problems += writeback_problems(
            endpoint,
            http,
            keys,
            secrets,
            actor_oid,
            token_endpoint=conf.token_endpoint,
            permission_v2=found.permission_v2,
            hosts=found.hosts.all(),
        )
    return Validation(
        checked_at=now,
        ok=not problems,
        problems=problems,
        fhir_version=found.fhir_version,
        authorize_endpoint=conf.authorization_endpoint,
        token_endpoint=conf.token_endpoint,
        issuer=conf.issuer,
        jwks_uri=conf.jwks_uri,
        pinned_hosts=found.hosts,
        capabilities=sorted(found.capabilities),
        permission_v2=found.permission_v2,
        iss_parameter=_declares_iss(conf),
    )
