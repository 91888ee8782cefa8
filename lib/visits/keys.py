"""The keys visits are stored and found under: keyed hashes, never the identifiers themselves.

The launch, SMS join links and scheduling intake all compute the same visit key for the same
appointment, so they meet at one visit.
"""

from __future__ import annotations

from lib.endpoints.models import Endpoint
from lib.privacy import PrivacyKeys


def visit_key(privacy: PrivacyKeys, endpoint: Endpoint, resource_type: str, fhir_id: str) -> str:
    # The FHIR base is part of the key: re-pointing an endpoint (or re-using its name) at another
    # server must never open another server's Appointment/123 meeting.
    return privacy.keyed_hash(endpoint.id, endpoint.fhir_base_url, resource_type, fhir_id)


def clinician_hash(privacy: PrivacyKeys, endpoint: Endpoint, practitioner_id: str) -> str:
    """The key of a clinician's mapping: their EHR user (a Practitioner id) at this endpoint."""
    return privacy.keyed_hash(
        endpoint.id, endpoint.fhir_base_url, "Practitioner", practitioner_id, purpose="ehr-user"
    )
