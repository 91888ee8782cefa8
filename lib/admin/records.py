"""Integration records (F4): what the EHR build team enters on their side, copy-ready.

Built from the endpoint and the app's public URL, never stored: they change when the deployment's
URL does, and are always what the running app actually serves.
"""

from __future__ import annotations

from lib.admin.models import EndpointRecord, EndpointStatus, PrivateKeyJwt, Vendor
from lib.settings import get_settings
from lib.smart.scopes import join, patient_launch_scopes, provider_launch_scopes
from lib.web.errors import AppError


def callback_url() -> str:
    """The one redirect URI for every sign-in we start (launches and approvals)."""
    return f"{get_settings().public_url}/api/launch/callback"


def jwks_url() -> str:
    return f"{get_settings().public_url}/api/.well-known/jwks.json"


def launch_url(endpoint_id: str, role: str) -> str:
    return f"{get_settings().public_url}/api/launch/{endpoint_id}/{role}"


def integration_records(record: EndpointRecord) -> dict:
    if record.status != EndpointStatus.ACTIVE:
        raise AppError("CFG-NOT-ACTIVE", f"Status is {record.status.value}.")
    v2 = bool(record.validation and record.validation.permission_v2)
    records = {
        "endpoint": record.id,
        "vendor": record.vendor.value,
        "environment": record.environment.value,
        "fhir_base_url": record.fhir_base_url,
        "client_id": record.client_id,
        "client_authentication": record.client_auth.method,
        "redirect_uri": callback_url(),
        "provider_launch_url": launch_url(record.id, "provider"),
        "patient_launch_url": launch_url(record.id, "patient"),
        "provider_scopes": join(provider_launch_scopes(v2=v2)),
        "patient_scopes": join(patient_launch_scopes(v2=v2)),
        "launch_parameters": {"iss": "the FHIR base URL above", "launch": "the EHR's launch token"},
    }
    if isinstance(record.client_auth, PrivateKeyJwt):
        records["jwks_url"] = jwks_url()
        records["signing_algorithm"] = record.client_auth.alg
    if record.vendor == Vendor.EPIC:
        records["notes"] = [
            "Register both launch URLs as the app's launch URLs (provider: Hyperspace / Haiku "
            "/ Canto 'Begin virtual visit'; patient: MyChart).",
            "Epic prefers a form POST to authorize for EHR launch; the connector does that.",
        ]
    else:
        records["notes"] = [
            "Register the provider launch URL for PowerChart and the patient launch URL for the "
            "patient portal in the Oracle Health code console.",
        ]
    return records


def as_text(record: EndpointRecord, records: dict) -> str:
    """The same records as aligned text, to paste into a build ticket."""
    lines = [f"Integration records for {record.organization} ({record.id})", ""]
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
