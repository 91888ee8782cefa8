"""Write-back's part of endpoint validation: can we authenticate the calls it will make?

Checked when the endpoint is validated (created, changed, re-validated), so a wrong backend
client id or a missing key shows on the endpoint, not first in the dead-letter table:

- backend services: our key for the algorithm exists, and the EHR's token endpoint gives a
  client_credentials token for the scopes (the real request, with a fresh assertion);
- Epic service account: the password's setting name is one we may read, and it is bound to the
  EHR's host (a second person approves a new host, as for launch client secrets).
"""

from __future__ import annotations

import re

from lib.endpoints.client import key_for
from lib.endpoints.models import (
    BackendServicesAuth,
    Endpoint,
    ServiceAccountAuth,
    ValidationProblem,
)
from lib.endpoints.secrets import SECRET_SETTING, SecretBindings
from lib.net.http import OutboundHttp, host_of
from lib.smart.client_auth import PrivateKeyJwt
from lib.smart.keys import KeySet
from lib.smart.tokens import client_credentials
from lib.web.errors import CATALOGUE, AppError


def backend_scopes(auth: BackendServicesAuth, permission_v2: bool) -> list[str]:
    """What write-back asks for: the configured scopes, else what an Appointment PATCH needs
    (the fresh read for its ETag, and the update)."""
    if auth.scopes:
        return list(auth.scopes)
    if permission_v2:
        return ["system/Appointment.rs", "system/Appointment.u"]
    return ["system/Appointment.read", "system/Appointment.write"]


def _problem(code: str, message: str | None = None) -> ValidationProblem:
    return ValidationProblem(code=code, message=message or CATALOGUE[code].sentence)


def writeback_problems(
    endpoint: Endpoint,
    http: OutboundHttp,
    keys: KeySet | None,
    secrets: SecretBindings,
    actor_oid: str,
    *,
    token_endpoint: str | None,
    permission_v2: bool,
    hosts: frozenset[str] | None,
) -> list[ValidationProblem]:
    config = endpoint.writeback
    if not config.enabled:
        return []
    auth = config.auth
    if auth is None:
        return [_problem("WB-AUTH-MISSING")]
    if isinstance(auth, ServiceAccountAuth):
        if not re.fullmatch(SECRET_SETTING, auth.secret_setting):
            return [_problem("CFG-SECRET-NAME-REFUSED")]
        refused = secrets.check(auth.secret_setting, host_of(endpoint.fhir_base_url), actor_oid)
        return [_problem("CFG-SECRET-HOST-UNAPPROVED", refused)] if refused else []
    key = key_for(keys, auth.alg)
    if key is None:
        return [
            _problem("CFG-SIGNING-KEY-MISSING", f"No {auth.alg} key in CONNECTOR_SIGNING_KEYS.")
        ]
    if not token_endpoint:
        return [_problem("WB-BACKEND-TOKEN-FAILED", "Discovery names no token endpoint.")]
    try:
        client_credentials(
            http,
            token_endpoint,
            backend_scopes(auth, permission_v2),
            PrivateKeyJwt(auth.client_id, key),
            allowed_hosts=hosts,
        )
    except AppError as err:
        return [_problem("WB-BACKEND-TOKEN-FAILED", f"{err.code}: {err.detail or ''}".strip())]
    return []
