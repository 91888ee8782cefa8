"""The scopes we request, and whether the server granted what we need.

Requested sets (SMART 2 `.rs` form when the server lists the `permission-v2` capability, the v1
`.read` form otherwise, because servers without it reject or ignore v2 scopes):

- provider EHR launch: launch openid fhirUser + user/{Appointment,Patient,Practitioner,Encounter}
- patient EHR launch:  launch openid fhirUser + patient/{Appointment,Patient}
- approval sign-in (standalone, F3): openid fhirUser (it only proves the approver can sign in)

Comparing with the granted `scope` string (servers may grant less):
- v1 and v2 forms are equivalent: `read` == `rs`, `write` == `cud`, `*` == `cruds`; a granted
  resource scope covers a request when its permissions (together with any `{context}/*` grant in
  the same context) include the requested ones; v2 grants narrowed by `?query` cover nothing;
- `launch` and `launch/...` are never reported: they ask for context, which arrives beside the
  token (and many servers leave them out of `scope`);
- `openid` / `fhirUser` are reported only when no id_token came back (an id_token proves them);
- anything else must be granted verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PROVIDER_RESOURCES = ("Appointment", "Patient", "Practitioner", "Encounter")
PATIENT_RESOURCES = ("Appointment", "Patient")
IDENTITY_SCOPES = ("openid", "fhirUser")

_V1_PERMS = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<resource>[A-Za-z]+|\*)\.(?P<perms>[a-z*]+)$"
)


def read_scope(context: str, resource: str, *, v2: bool) -> str:
    """`user/Patient.rs` (v2) or `user/Patient.read` (v1)."""
    return f"{context}/{resource}.{'rs' if v2 else 'read'}"


def provider_launch_scopes(*, v2: bool) -> list[str]:
    return ["launch", *IDENTITY_SCOPES] + [read_scope("user", r, v2=v2) for r in PROVIDER_RESOURCES]


def patient_launch_scopes(*, v2: bool) -> list[str]:
    return ["launch", *IDENTITY_SCOPES] + [
        read_scope("patient", r, v2=v2) for r in PATIENT_RESOURCES
    ]


def approval_scopes() -> list[str]:
    return list(IDENTITY_SCOPES)


def join(scopes: Iterable[str]) -> str:
    """The space-separated `scope` parameter, duplicates dropped, order kept."""
    return " ".join(dict.fromkeys(s for s in scopes if s))


def parse(scope: str | None) -> list[str]:
    """The granted `scope` string as a list (None or empty -> [])."""
    return list(dict.fromkeys((scope or "").split()))


def _permissions(scope: str) -> tuple[str, str, frozenset[str]] | None:
    """(context, resource, permission letters) of a resource scope; None for anything else."""
    match = _RESOURCE_SCOPE.match(scope)
    if not match:
        return None
    perms = match["perms"]
    letters = _V1_PERMS.get(perms, perms)
    if not set(letters) <= set("cruds"):
        return None
    return match["context"], match["resource"], frozenset(letters)


def _granted_permissions(granted: Iterable[str]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for scope in granted:
        parsed = _permissions(scope)  # "?query"-narrowed v2 grants do not match: ignored
        if parsed:
            context, resource, letters = parsed
            table.setdefault((context, resource), set()).update(letters)
    return table


def missing(
    requested: Iterable[str], granted: Iterable[str] | str | None, *, has_id_token: bool
) -> list[str]:
    """Requested scopes the grant does not cover (rules in the module docstring)."""
    granted_list = parse(granted) if isinstance(granted, str | None) else list(granted)
    table = _granted_permissions(granted_list)
    absent: list[str] = []
    for scope in dict.fromkeys(requested):
        if scope == "launch" or scope.startswith("launch/"):
            continue
        if scope in IDENTITY_SCOPES:
            if not has_id_token and scope not in granted_list:
                absent.append(scope)
            continue
        parsed = _permissions(scope)
        if parsed is None:
            if scope not in granted_list:
                absent.append(scope)
            continue
        context, resource, letters = parsed
        have = table.get((context, resource), set()) | table.get((context, "*"), set())
        if not letters <= have:
            absent.append(scope)
    return absent
