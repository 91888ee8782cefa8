"""Endpoint validation (F2): fetch discovery now and say precisely what makes it unusable."""

from __future__ import annotations

from datetime import UTC, datetime

from lib.admin.credentials import key_for
from lib.admin.models import (
    ClientSecretBasic,
    EndpointRecord,
    FhirVersion,
    PrivateKeyJwt,
    Validation,
    ValidationProblem,
)
from lib.settings import setting_value
from lib.smart.discovery import discover, validate
from lib.smart.http import OutboundHttp
from lib.smart.keys import KeySet
from lib.web.errors import AppError


def _problem(code: str, message: str | None = None) -> ValidationProblem:
    from lib.web.errors import CATALOGUE

    return ValidationProblem(code=code, message=message or CATALOGUE[code].sentence)


def _credential_problems(record: EndpointRecord, keys: KeySet | None) -> list[ValidationProblem]:
    auth = record.client_auth
    if isinstance(auth, ClientSecretBasic) and not setting_value(auth.secret_setting):
        return [
            _problem("CFG-SECRET-SETTING-MISSING", f"App setting {auth.secret_setting} is not set.")
        ]
    if isinstance(auth, PrivateKeyJwt) and (key_for(keys, auth.alg) is None):
        return [
            _problem("CFG-SIGNING-KEY-MISSING", f"No {auth.alg} key in CONNECTOR_SIGNING_KEYS.")
        ]
    return []


def validate_record(record: EndpointRecord, http: OutboundHttp, keys: KeySet | None) -> Validation:
    now = datetime.now(UTC)
    try:
        found = discover(http, record.fhir_base_url, use_cache=False)
    except AppError as err:
        return Validation(checked_at=now, ok=False, problems=[_problem(err.code, err.detail)])
    alg = record.client_auth.alg if isinstance(record.client_auth, PrivateKeyJwt) else None
    problems = [
        _problem(p.code, p.message)
        for p in validate(
            found, record.client_auth.method, signing_alg=alg, require_https=not http.local_mode
        )
    ]
    problems += _credential_problems(record, keys)
    conf = found.config
    return Validation(
        checked_at=now,
        ok=not problems,
        problems=problems,
        fhir_version=FhirVersion(found.fhir_version)
        if found.fhir_version in ("R4", "DSTU2")
        else FhirVersion.UNKNOWN,
        authorize_endpoint=conf.authorization_endpoint,
        token_endpoint=conf.token_endpoint,
        issuer=conf.issuer,
        jwks_uri=conf.jwks_uri,
        pinned_hosts=found.hosts,
        capabilities=sorted(found.capabilities),
        permission_v2=found.permission_v2,
    )
