"""The SMS part of an endpoint's integration records (F4, F12): what the EHR's interface team
configures to send scheduling messages: where, in which formats, signed how, and with which
certificate (the one uploaded for the endpoint's environment, by its SHA-256 thumbprint)."""

from __future__ import annotations

from lib.endpoints.models import Endpoint
from lib.endpoints.records import integration_records as endpoint_records
from lib.sms.config import SmsConfig
from lib.web.urls import Urls

SIGNATURE = (
    "X-EVC-Signature: a detached JWS (RFC 7515, unencoded payload RFC 7797, b64=false) over the "
    "exact body bytes; RS256 / ES256 / ES384 by the certificate's key; iat within 5 minutes; "
    "a jti used once"
)
FORMATS = (
    "HL7 v2 SIU S12 / S13 / S14 / S15 / S17 (application/hl7-v2, MLLP framing optional) or FHIR "
    "R4 Appointment (application/fhir+json); at most 64 KiB"
)


def sms_records(endpoint: Endpoint, sms: SmsConfig, urls: Urls) -> dict:
    certificate = sms.certificate(endpoint.environment)
    return {
        "scheduling_intake_url": urls.scheduling(endpoint.id),
        "scheduling_formats": FORMATS,
        "scheduling_signature": SIGNATURE,
        "scheduling_certificate_sha256": (
            certificate.thumbprint_sha256
            if certificate
            else f"none uploaded for {endpoint.environment.value} "
            f"(PUT /api/config/sms/certificates/{endpoint.environment.value})"
        ),
        "sms_number": sms.number_for(endpoint.id) or "none linked",
    }


def integration_records(endpoint: Endpoint, urls: Urls, sms: SmsConfig) -> dict:
    """The endpoint's records (lib/endpoints/records.py) with its SMS records, notes last."""
    records = endpoint_records(endpoint, urls)
    notes = records.pop("notes")
    return {**records, **sms_records(endpoint, sms, urls), "notes": notes}
