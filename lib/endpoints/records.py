"""Integration records (F4): what the EHR build team enters on their side, copy-ready.

Built from the endpoint and the app's public URLs, never stored: they change when the
deployment's URL does, and are always what the running app actually serves.
"""

from __future__ import annotations

from lib.ehr.profiles import profile_for
from lib.endpoints.client import scopes_for
from lib.endpoints.models import (
    BackendServicesAuth,
    Endpoint,
    EndpointStatus,
    PrivateKeyJwtConfig,
    ServiceAccountAuth,
)
from lib.endpoints.writeback_check import backend_scopes
from lib.smart.scopes import join
from lib.web.errors import AppError
from lib.web.urls import Urls


def integration_records(endpoint: Endpoint, urls: Urls) -> dict:
    if endpoint.status != EndpointStatus.ACTIVE:
        raise AppError("CFG-NOT-ACTIVE", f"Status is {endpoint.status.value}.")
    records = {
        "endpoint": endpoint.id,
        "vendor": endpoint.vendor.value,
        "environment": endpoint.environment.value,
        "fhir_base_url": endpoint.fhir_base_url,
        "client_id": endpoint.client_id,
        "client_authentication": endpoint.client_auth.method,
        "redirect_uri": urls.callback,
        "provider_launch_url": urls.launch(endpoint.id, "provider"),
        "patient_launch_url": urls.launch(endpoint.id, "patient"),
        "provider_scopes": join(scopes_for(endpoint, "provider")),
        "patient_scopes": join(scopes_for(endpoint, "patient")),
        "launch_parameters": {"iss": "the FHIR base URL above", "launch": "the EHR's launch token"},
    }
    if isinstance(endpoint.client_auth, PrivateKeyJwtConfig):
        records["jwks_url"] = urls.jwks
        records["signing_algorithm"] = endpoint.client_auth.alg
    records |= _writeback_records(endpoint, urls)
    records["notes"] = list(profile_for(endpoint.vendor).record_notes)
    return records


def _writeback_records(endpoint: Endpoint, urls: Urls) -> dict:
    """What the EHR needs for write-back: the backend app (client id, system scopes, our JWKS),
    or Epic's service account; nothing when write-back is off."""
    config = endpoint.writeback
    if not config.enabled or config.auth is None:
        return {}
    auth = config.auth
    records: dict = {"writeback_authentication": auth.method}
    if isinstance(auth, BackendServicesAuth):
        v2 = bool(endpoint.validation and endpoint.validation.permission_v2)
        records |= {
            "backend_client_id": auth.client_id,
            "backend_scopes": join(backend_scopes(auth, v2)),
            "backend_jwks_url": urls.jwks,
            "backend_signing_algorithm": auth.alg,
        }
    elif isinstance(auth, ServiceAccountAuth):
        records["service_account"] = auth.username
    return records


def as_text(endpoint: Endpoint, records: dict) -> str:
    """The same records as aligned text, to paste into a build ticket."""
    lines = [f"Integration records for {endpoint.organization} ({endpoint.id})", ""]
    for key, value in records.items():
        label = key.replace("_", " ").capitalize()
        if isinstance(value, list):
            lines.append(f"{label}:")
            lines += [f"  - {v}" for v in value]
        elif isinstance(value, dict):
            lines.append(f"{label}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            lines.append(f"{label + ':':<24}{value}")
    return "\n".join(lines) + "\n"
