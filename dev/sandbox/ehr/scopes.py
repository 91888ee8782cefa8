"""SMART scopes: what an EHR offers, and what a granted scope string lets a token read.

v1 scopes: ``user/Appointment.read``, ``patient/*.read``, ``system/Appointment.write``.
v2 scopes (servers with ``permission-v2``): ``user/Appointment.rs``, ``system/Appointment.u``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RESOURCES = ("Patient", "Practitioner", "Appointment", "Encounter", "Location")
IDENTITY_SCOPES = ("openid", "fhirUser", "profile")
LAUNCH_SCOPES = ("launch", "launch/patient", "launch/encounter", "online_access")
_CLINICAL = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>[A-Za-z]+|\*)\."
    r"(?P<perm>read|write|\*|c?r?u?d?s?)(?:\?.*)?$"
)


def resource_scopes(v2: bool, contexts: Iterable[str] = ("user", "patient")) -> list[str]:
    scopes = []
    for context in contexts:
        for resource in RESOURCES:
            scopes.append(f"{context}/{resource}.read")
            if v2:
                scopes.append(f"{context}/{resource}.rs")
    return scopes


def system_scopes(v2: bool) -> list[str]:
    scopes = [*resource_scopes(v2, ("system",)), "system/Appointment.write"]
    if v2:
        scopes.append("system/Appointment.u")
    return scopes


def supported(v2: bool) -> list[str]:
    """``scopes_supported`` of the discovery document."""
    return [*IDENTITY_SCOPES, *LAUNCH_SCOPES, *resource_scopes(v2), *system_scopes(v2)]


def is_wildcard(scope: str) -> bool:
    return "*" in scope


def is_clinical(scope: str) -> bool:
    return _CLINICAL.match(scope) is not None


def context_of(scope: str) -> str | None:
    match = _CLINICAL.match(scope)
    return match["context"] if match else None


def allows(scopes: Iterable[str], resource_type: str, interaction: str) -> bool:
    """Whether any scope permits ``interaction`` ('read' or 'search') on ``resource_type``."""
    for scope in scopes:
        match = _CLINICAL.match(scope)
        if not match or match["type"] not in (resource_type, "*"):
            continue
        perm = match["perm"]
        if perm in ("read", "*"):
            return True
        letter = "r" if interaction == "read" else "s"
        if perm not in ("write",) and letter in perm:
            return True
    return False
