"""The connector's settings: one typed object read from the environment.

Names are the app-setting names (what `local.settings.json` Values and the Azure app settings
hold); every one is documented in `local.settings.sample.json`. In Azure, secrets are Key Vault
references (`@Microsoft.KeyVault(SecretUri=...)`) that the platform resolves before the value
reaches the environment, so this module only ever sees plain values.

This is the only module that reads `os.environ` (besides dev/).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
from typing import Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

# An origin as CSP frame-ancestors takes it (lib/endpoints/models.py ORIGIN says it in full).
_ORIGIN = re.compile(r"https://[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[1-9][0-9]{0,4})?")


class SettingsError(RuntimeError):
    """A missing or malformed setting; the message names it in one line."""


class Settings(BaseModel):
    # A plain model validated from the environment mapping (pydantic-settings would add ~30 ms
    # to every cold start for features we do not use).
    model_config = ConfigDict(extra="ignore", frozen=True)

    # --- storage ---------------------------------------------------------------------------
    storage_connection_string: str | None = Field(
        default=None, validation_alias="AzureWebJobsStorage"
    )
    # Identity-based connection (Azure): no shared key; azure-identity supplies the token.
    storage_account_name: str | None = Field(
        default=None, validation_alias="AzureWebJobsStorage__accountName"
    )
    storage_table_uri: str | None = Field(
        default=None, validation_alias="AzureWebJobsStorage__tableServiceUri"
    )
    storage_queue_uri: str | None = Field(
        default=None, validation_alias="AzureWebJobsStorage__queueServiceUri"
    )
    storage_client_id: str | None = Field(
        default=None, validation_alias="AzureWebJobsStorage__clientId"
    )
    table_prefix: str = Field(default="evc", validation_alias="CONNECTOR_TABLE_PREFIX")

    # --- the app itself ----------------------------------------------------------------------
    public_url: str = Field(validation_alias="CONNECTOR_PUBLIC_URL")
    local_mode: bool = Field(default=False, validation_alias="CONNECTOR_LOCAL_MODE")
    hash_key: SecretStr = Field(validation_alias="CONNECTOR_HASH_KEY")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="CONNECTOR_LOG_LEVEL"
    )

    # --- time budgets (lib/net/budget.py) ------------------------------------------------------
    # A person waiting (launch, callback, visit page, config API): every outbound call, retry
    # and wait of one request fits in this many seconds, or the answer is a coded 503.
    interactive_budget: float = Field(
        default=10.0, gt=1, le=60, validation_alias="CONNECTOR_INTERACTIVE_BUDGET_SECONDS"
    )
    # A timer or queue run: nobody is waiting, so calls may take longer; the run stops cleanly
    # (its work left for the next run) when the budget is spent.
    background_budget: float = Field(
        default=120.0, gt=1, le=600, validation_alias="CONNECTOR_BACKGROUND_BUDGET_SECONDS"
    )
    # Background runs' storage client: a longer read and more retries than a person's (2 s to
    # connect, 3 s to answer, one retry: lib/storage/account.py).
    background_storage_read_timeout: float = Field(
        default=20.0, gt=0, le=120,
        validation_alias="CONNECTOR_BACKGROUND_STORAGE_READ_TIMEOUT_SECONDS",
    )  # fmt: skip
    # One EHR write-back call (lib/writeback): seconds to wait for the answer. A hung EHR costs
    # a queue worker this long, then the queue retries the job later.
    writeback_timeout: float = Field(
        default=10.0, gt=0, le=60, validation_alias="CONNECTOR_WRITEBACK_TIMEOUT_SECONDS"
    )
    background_storage_retries: int = Field(
        default=3, ge=0, le=10, validation_alias="CONNECTOR_BACKGROUND_STORAGE_RETRIES"
    )

    # PEM text of our private keys (RS384 RSA and/or ES384 P-384), the first one signing; all of
    # them are published at /api/.well-known/jwks.json. Rotate by adding, switching, removing.
    signing_keys: SecretStr | None = Field(default=None, validation_alias="CONNECTOR_SIGNING_KEYS")

    # AES-256-GCM keys for sealed values (base64 of 32 bytes each, comma- or newline-separated),
    # the first one sealing; separate from the hash key. Rotate by putting a new key first and
    # keeping the old one until every value sealed with it has been purged.
    sealing_keys: SecretStr = Field(validation_alias="CONNECTOR_SEALING_KEYS")

    # --- Entra ID (admin API tokens) -----------------------------------------------------------
    entra_tenant_id: str = Field(validation_alias="ENTRA_TENANT_ID")
    entra_authority_host: str = Field(
        default="https://login.microsoftonline.com", validation_alias="ENTRA_AUTHORITY_HOST"
    )
    entra_api_audience: str = Field(
        validation_alias=AliasChoices("ENTRA_API_AUDIENCE", "ENTRA_CLIENT_ID")
    )
    # The API's own app registration (client id) when it is not the connector's: v2 tokens
    # carry it as `aud`, v1 tokens the Application ID URI above. Both are accepted.
    entra_api_client_id: str | None = Field(default=None, validation_alias="ENTRA_API_CLIENT_ID")
    # The delegated permission (scope) the API exposes: a user's token must carry it in `scp`.
    entra_api_scope: str = Field(default="Connector.Access", validation_alias="ENTRA_API_SCOPE")

    # The connector's own app registration: app-only Graph calls (meetings) and the clinicians'
    # one-time sign-in. In Azure the secret is a Key Vault reference.
    entra_client_id: str | None = Field(default=None, validation_alias="ENTRA_CLIENT_ID")
    entra_client_secret: SecretStr | None = Field(
        default=None, validation_alias="ENTRA_CLIENT_SECRET"
    )

    # --- Microsoft Graph / Teams -----------------------------------------------------------------
    graph_base_url: str = Field(
        default="https://graph.microsoft.com", validation_alias="GRAPH_BASE_URL"
    )
    # Hosts we may redirect a browser to as a meeting join URL (comma-separated host[:port]).
    teams_join_hosts: str = Field(
        default="teams.microsoft.com", validation_alias="TEAMS_JOIN_HOSTS"
    )

    # The only origins that may ever frame our pages, whatever an endpoint's launch.ehr_origins
    # say (comma-separated https://host[:port]): a deployment-wide ceiling set by whoever
    # deploys, beneath the config API's admins. Empty: the endpoints alone decide.
    frame_origins: str = Field(default="", validation_alias="CONNECTOR_FRAME_ORIGINS")

    # --- telemetry (lib/telemetry.py) -----------------------------------------------------------
    # Unset: no telemetry from the app, and nothing of OpenTelemetry imported.
    appinsights_connection_string: str | None = Field(
        default=None, validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING"
    )
    # `ClientId=<managed identity>;Authorization=AAD`: send with that identity's Entra token.
    appinsights_authentication_string: str | None = Field(
        default=None, validation_alias="APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
    )

    # --- Microsoft Graph change notifications (lib/notifications) ----------------------------
    # PEM: an RSA private key and its certificate, which Graph encrypts meeting call events to
    # (subscriptions with resource data). None: no meeting subscriptions (call records and the
    # attendance reports still come).
    graph_notification_certificate: SecretStr | None = Field(
        default=None, validation_alias="GRAPH_NOTIFICATION_CERTIFICATE"
    )
    # NCRONTAB of the subscriptions timer (renewal before expiry; functions/graph_subscriptions.py).
    graph_timer_schedule: str = Field(
        default="0 */15 * * * *", validation_alias="GRAPH_TIMER_SCHEDULE"
    )
    # How long after a call ends its attendance report is read (Graph publishes it minutes later).
    graph_reconcile_delay: int = Field(
        default=300, ge=0, le=3600, validation_alias="GRAPH_RECONCILE_DELAY_SECONDS"
    )

    # --- Communication Services (SMS) -------------------------------------------------------------
    # endpoint=https://<resource>.communication.azure.com/;accesskey=<base64>. None: SMS is off.
    acs_connection_string: SecretStr | None = Field(
        default=None, validation_alias="ACS_CONNECTION_STRING"
    )

    # The shared secret in the Event Grid subscription's URL (?secret=...). None: events refused.
    sms_events_secret: SecretStr | None = Field(default=None, validation_alias="SMS_EVENTS_SECRET")
    # NCRONTAB of the texts timer (functions/reminders.py reads it as %SMS_TIMER_SCHEDULE%).
    sms_timer_schedule: str = Field(default="0 * * * * *", validation_alias="SMS_TIMER_SCHEDULE")
    # How many past days of demo visits `make run` seeds through the visit-events queue, so the
    # reports are not empty (dev/demo.py). 0: none. Read by the local run only; the app ignores it.
    demo_visit_days: int = Field(
        default=0, ge=0, le=90, validation_alias="CONNECTOR_DEMO_VISIT_DAYS"
    )

    @field_validator("acs_connection_string")
    @classmethod
    def _acs_connection_string_usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        acs_parts(value.get_secret_value())
        return value

    @property
    def acs_endpoint(self) -> str | None:
        """The Communication Services resource's endpoint, without the trailing slash."""
        if self.acs_connection_string is None:
            return None
        return acs_parts(self.acs_connection_string.get_secret_value())[0]

    @property
    def join_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.teams_join_hosts.split(",") if h.strip())

    @property
    def frame_ceiling(self) -> frozenset[str] | None:
        """CONNECTOR_FRAME_ORIGINS as a set, or None when it sets no ceiling."""
        origins = {o.strip().lower() for o in self.frame_origins.split(",") if o.strip()}
        return frozenset(origins) if origins else None

    @field_validator("frame_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if not _ORIGIN.fullmatch(origin.lower()):
                raise ValueError(
                    f"{origin[:60]!r} is not an origin (https://host or https://host:port)"
                )
        return value

    @field_validator("public_url", "entra_authority_host", "graph_base_url")
    @classmethod
    def _absolute_url_without_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("hash_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters of random text")
        return value

    @field_validator("sealing_keys")
    @classmethod
    def _sealing_keys_usable(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        from lib.sealing import parse_keys  # no cryptography import: cheap at start-up

        hash_key = info.data.get("hash_key")
        parse_keys(
            value.get_secret_value(),
            hash_key=hash_key.get_secret_value() if hash_key is not None else None,
        )
        return value

    @property
    def api_audiences(self) -> frozenset[str]:
        """Every `aud` an admin API token may carry: the Application ID URI and the client id."""
        client = self.entra_api_client_id or self.entra_client_id
        return frozenset(a for a in (self.entra_api_audience, client) if a)

    @property
    def entra_issuer(self) -> str:
        """The `iss` of a v2 access token for our tenant."""
        return f"{self.entra_authority_host}/{self.entra_tenant_id}/v2.0"

    @property
    def storage_configured(self) -> bool:
        return bool(
            self.storage_connection_string or self.storage_account_name or self.storage_table_uri
        )


def acs_parts(connection_string: str) -> tuple[str, str]:
    """(endpoint, access key) of a Communication Services connection string; ValueError when it
    is not one (the message never echoes the key)."""
    fields = {}
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip()
    endpoint, key = fields.get("endpoint", ""), fields.get("accesskey", "")
    if not endpoint.startswith("https://") or not key:
        raise ValueError(
            "must be endpoint=https://<resource>.communication.azure.com/;accesskey=..."
        )
    try:
        base64.b64decode(key, validate=True)
    except ValueError:
        raise ValueError("its accesskey must be base64 (the resource's Keys page)") from None
    return endpoint.rstrip("/"), key


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise SettingsError naming the first bad one."""
    env = dict(os.environ if environ is None else environ)
    try:
        settings = Settings.model_validate(env)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None
    if not settings.storage_configured:
        raise SettingsError(
            "Setting AzureWebJobsStorage is missing: give a connection string, or "
            "AzureWebJobsStorage__accountName for an identity-based connection."
        )
    if not settings.local_mode:
        _refuse_sample_secrets(env)
    return settings


# The sandbox's Communication Services resource under make run (dev/sandbox/acs/).
SANDBOX_ACS_CONNECTION_STRING = (
    "endpoint=https://127.0.0.6:7448/;accesskey=c2FuZGJveC1hY3MtYWNjZXNzLWtleS1ub3Qtc2VjcmV0IQ=="
)
# The secrets local.settings.sample.json ships (tests/unit/test_settings.py keeps this list
# complete): published with the code, so outside local mode they are no secrets at all.
SAMPLE_SECRETS = frozenset(
    {
        "local-only-hash-key-0123456789abcdef0123456789",
        "bG9jYWwtb25seS1zZWFsaW5nLWtleS1ub3QtcHJvZCE=",
        "local-dev-secret-not-for-production",
        "epic-local-secret-not-for-production",
        "cerner-local-secret-not-for-production",
        SANDBOX_ACS_CONNECTION_STRING,
        "local-sms-events-secret-not-for-production",
    }
)


def _refuse_sample_secrets(env: dict[str, str]) -> None:
    for name, value in sorted(env.items()):
        parts = {p.strip() for p in value.replace("\\n", ",").replace("\n", ",").split(",")}
        if parts & SAMPLE_SECRETS:
            raise SettingsError(
                f"Setting {name} holds a value from local.settings.sample.json: outside local "
                "mode (CONNECTOR_LOCAL_MODE) give it a secret of its own."
            )


def setting_value(name: str) -> str | None:
    """An app setting named in configuration (e.g. an endpoint's client secret setting).

    Endpoints name the setting that holds their secret, so secrets stay in app settings / Key
    Vault and never pass through the config API or its tables.
    """
    return os.environ.get(name)


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    name = err["loc"][0] if err["loc"] else "?"
    if err["type"] == "missing":
        return f"Setting {name} is missing (see local.settings.sample.json)."
    # Never echo the value: it may be a secret.
    return f"Setting {name} is invalid: {err['msg']}."


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once (on first use, or by the warmup function before an
    instance takes traffic), and the log level they name applied."""
    settings = load_settings()
    logging.getLogger().setLevel(settings.log_level)
    return settings
