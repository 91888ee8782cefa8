"""The demo Entra tenant: its id, app registrations, resources and people.

Fixed ids so that seeds, EHR stand-ins (a clinician is also a Teams meeting organizer) and
tests can refer to the same people. Everything here is fictional.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TENANT_ID = "7d3c1c5e-0b1a-4c1e-9f00-00000000e7c0"
TENANT_DOMAIN = "evcsandbox.onmicrosoft.com"

# Our connector's registration: it calls Graph (app-only) and exposes the admin API.
CONNECTOR_CLIENT_ID = "5f0c4a1e-7a1b-4c2d-8e3f-00000000c0e1"
CONNECTOR_API_AUDIENCE = "api://evc-connector-local"
# Overridden by the sandbox setting ENTRA_CLIENT_SECRET (env SANDBOX_ENTRA_CLIENT_SECRET).
DEFAULT_CONNECTOR_SECRET = "local-dev-secret-not-for-production"
# A public client (no secret, PKCE only) for command-line and test sign-ins.
CLI_CLIENT_ID = "5f0c4a1e-7a1b-4c2d-8e3f-00000000c0e2"

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
# "Microsoft Graph Change Tracking": the app Graph's change notifications are published as; the
# `azp` (v2) / `appid` (v1) of the validationTokens on rich notifications.
GRAPH_PUBLISHER_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
GRAPH_PUBLISHER_OBJECT_ID = "4b6d5a0e-2c1f-4e9a-9b7d-00000000c7a0"  # its service principal here

ROLE_ADMIN = "Connector.Admin"
ROLE_APPROVER = "Connector.Approver"
ROLE_READER = "Connector.Reader"


@dataclass(frozen=True)
class Resource:
    """An API that tokens are issued for. ``audience`` is the ``aud`` of its tokens."""

    app_id: str
    identifier_uri: str
    audience: str
    app_roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()  # delegated permissions


@dataclass(frozen=True)
class AppRegistration:
    client_id: str
    display_name: str
    object_id: str  # the service principal's object id: `oid` / `sub` of app-only tokens
    secret_setting: str | None = None  # sandbox setting holding its secret; None = public
    default_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    # Entra ignores the port of loopback redirect URIs; local apps run on any port.
    allow_loopback_redirects: bool = True
    app_role_grants: dict[str, tuple[str, ...]] = field(default_factory=dict)  # resource app id

    @property
    def is_public(self) -> bool:
        return self.secret_setting is None


@dataclass(frozen=True)
class DemoUser:
    key: str  # short handle for pages, CLI and tests
    object_id: str
    name: str
    upn: str
    description: str
    app_roles: tuple[str, ...] = ()  # assigned on the connector API


RESOURCES = (
    Resource(
        app_id=CONNECTOR_CLIENT_ID,
        identifier_uri=CONNECTOR_API_AUDIENCE,
        audience=CONNECTOR_API_AUDIENCE,
        app_roles=(ROLE_ADMIN, ROLE_APPROVER, ROLE_READER),
        scopes=("Connector.Access",),
    ),
    Resource(
        app_id=GRAPH_APP_ID,
        identifier_uri=GRAPH_AUDIENCE,
        audience=GRAPH_AUDIENCE,
        app_roles=(
            "OnlineMeetings.ReadWrite.All",
            "OnlineMeetingArtifact.Read.All",
            "CallRecords.Read.All",
            "User.Read.All",
            "Calls.JoinGroupCall.All",
        ),
        scopes=(
            "User.Read",
            "OnlineMeetings.ReadWrite",
            "VirtualAppointment.Read",
            "VirtualAppointment.ReadWrite",
            "email",
            "openid",
            "profile",
            "offline_access",
        ),
    ),
)

APPS = (
    AppRegistration(
        client_id=CONNECTOR_CLIENT_ID,
        display_name="EVC connector (local)",
        object_id="9a1e2b3c-0000-4000-8000-0000000c0e01",
        secret_setting="ENTRA_CLIENT_SECRET",
        default_secret=DEFAULT_CONNECTOR_SECRET,
        app_role_grants={
            GRAPH_APP_ID: (
                "OnlineMeetings.ReadWrite.All",
                "OnlineMeetingArtifact.Read.All",
                "CallRecords.Read.All",
                "User.Read.All",
            )
        },
    ),
    AppRegistration(
        client_id=CLI_CLIENT_ID,
        display_name="EVC command line (local)",
        object_id="9a1e2b3c-0000-4000-8000-0000000c0e02",
    ),
)

USERS = (
    DemoUser(
        "reyes",
        "1c1a0001-0000-4000-8000-00000000d001",
        "Dr. Ada Reyes",
        f"ada.reyes@{TENANT_DOMAIN}",
        "Clinician, family medicine",
    ),
    DemoUser(
        "okafor",
        "1c1a0002-0000-4000-8000-00000000d002",
        "Dr. Chidi Okafor",
        f"chidi.okafor@{TENANT_DOMAIN}",
        "Clinician, cardiology",
    ),
    DemoUser(
        "lindqvist",
        "1c1a0003-0000-4000-8000-00000000d003",
        "Dr. Maja Lindqvist",
        f"maja.lindqvist@{TENANT_DOMAIN}",
        "Clinician, paediatrics",
    ),
    DemoUser(
        "admin",
        "1c1a00ad-0000-4000-8000-00000000ad01",
        "Morgan Admin",
        f"morgan.admin@{TENANT_DOMAIN}",
        "Microsoft 365 admin",
        (ROLE_ADMIN,),
    ),
    DemoUser(
        "approver",
        "1c1a00a9-0000-4000-8000-00000000a901",
        "Priya Analyst",
        f"priya.analyst@{TENANT_DOMAIN}",
        "EHR analyst (approver)",
        (ROLE_APPROVER,),
    ),
    DemoUser(
        "reader",
        "1c1a00e5-0000-4000-8000-00000000e501",
        "Sam Auditor",
        f"sam.auditor@{TENANT_DOMAIN}",
        "Read-only reviewer",
        (ROLE_READER,),
    ),
)

# Which demo user `python -m dev.token --role X` speaks for, unless --user says otherwise.
ROLE_USERS = {"admin": "admin", "approver": "approver", "reader": "reader"}
ROLE_VALUES = {"admin": ROLE_ADMIN, "approver": ROLE_APPROVER, "reader": ROLE_READER}


def user(key_or_oid: str) -> DemoUser | None:
    """A demo user by key, object id or UPN."""
    wanted = key_or_oid.lower()
    for u in USERS:
        if wanted in (u.key, u.object_id, u.upn.lower()):
            return u
    return None
