"""Vendor profiles: everything that differs between Epic and Oracle Health (Cerner), in one place.

Modelled on authlib's "compliance hooks": the launch, the approval and the integration records
ask the endpoint's profile instead of testing `vendor == ...` where they are. A new vendor (the
generic SMART server, write-back adapters) is a new profile, not a new branch in five files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

# Who a launch is for: the clinician (provider EHR launch) or the patient (portal launch).
Persona = Literal["provider", "patient"]
PERSONAS: tuple[Persona, ...] = ("provider", "patient")


class Vendor(StrEnum):
    EPIC = "epic"
    CERNER = "cerner"
    SMART = "smart"  # any SMART App Launch 2.x server: no vendor quirks at all


@dataclass(frozen=True)
class VendorProfile:
    vendor: Vendor
    label: str
    # Authorize by an auto-submitted form POST even without the `authorize-post` capability
    # (Epic's preference: long launch tokens overflow URLs).
    authorize_post: bool = False
    # An EHR analyst (the endpoint's approver) must prove access before launches are accepted.
    needs_approval: bool = False
    # {context name: token-response field} this vendor uses; an endpoint's field map overrides.
    context_fields: Mapping[str, str] = field(default_factory=dict)
    # The persona path segments of the published authorize URL (Oracle Health publishes the
    # provider persona's; patients sign in at the patient persona's, same tenant and host).
    persona_paths: Mapping[Persona, str] = field(default_factory=dict)
    record_notes: tuple[str, ...] = ()

    def authorize_url(self, advertised: str, persona: Persona) -> str:
        """The authorize URL for `persona`, from the one discovery advertises."""
        published = self.persona_paths.get("provider")
        wanted = self.persona_paths.get(persona)
        if published and wanted and published != wanted:
            return advertised.replace(published, wanted)
        return advertised

    def uses_post(self, capabilities: frozenset[str]) -> bool:
        return self.authorize_post or "authorize-post" in capabilities

    def field_map(self, endpoint_fields: Mapping[str, str]) -> dict[str, str]:
        return {**self.context_fields, **endpoint_fields}


EPIC = VendorProfile(
    vendor=Vendor.EPIC,
    label="Epic",
    authorize_post=True,
    needs_approval=True,
    context_fields={"department": "loginDepartment"},
    record_notes=(
        "Register both launch URLs as the app's launch URLs (provider: Hyperspace / Haiku "
        "/ Canto 'Begin virtual visit'; patient: MyChart).",
        "Epic prefers a form POST to authorize for EHR launch; the connector does that.",
    ),
)

CERNER = VendorProfile(
    vendor=Vendor.CERNER,
    label="Oracle Health (Cerner)",
    context_fields={"ehr_user_id": "user", "username": "username"},
    persona_paths={"provider": "/personas/provider/", "patient": "/personas/patient/"},
    record_notes=(
        "Register the provider launch URL for PowerChart and the patient launch URL for the "
        "patient portal in the Oracle Health code console.",
    ),
)

# Plain SMART: `patient` / `encounter` / `fhirContext` beside the token, the user from the
# id_token's `fhirUser`, authorize by redirect unless the server declares `authorize-post`.
SMART = VendorProfile(
    vendor=Vendor.SMART,
    label="SMART App Launch 2.x server",
    record_notes=(
        "Register the provider and patient launch URLs as the app's EHR launch URLs, the "
        "redirect URI exactly as given, and the scopes listed here.",
        "The launch must carry an appointment or encounter context (fhirContext, or encounter).",
    ),
)

PROFILES: dict[Vendor, VendorProfile] = {p.vendor: p for p in (EPIC, CERNER, SMART)}


def profile_for(vendor: Vendor | str) -> VendorProfile:
    return PROFILES[Vendor(vendor)]
