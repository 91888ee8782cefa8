"""The SMS configuration's shapes: what the config API accepts and returns, and what is stored.

Stored in the `Config` table: partition `sms` holds the consent (row `consent`), the numbers
(`number-{digits}`), the number orders (`order-{id}`) and the intake certificates
(`certificate-{environment}`); an endpoint's text settings sit in its own partition
(`ep-{id}`, row `sms`), so their audit entries land beside the endpoint's.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from lib.endpoints.models import LINE, SLUG, Environment, _unchanged
from lib.storage import Entity

E164 = r"^\+[1-9][0-9]{6,14}$"
HHMM = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"
MAX_ENDPOINTS_PER_NUMBER = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# --- consent --------------------------------------------------------------------------------------
class ConsentGrant(_Strict):
    """Both statements, as an admin ticks them; each must be true."""

    sends_on_behalf_of_organization: Literal[True] = Field(
        description="We send texts on the organization's behalf, from its own number."
    )
    attendees_consented: Literal[True] = Field(
        description="The patients texted have consented to receive texts about their visits."
    )


class Statement(BaseModel):
    accepted: bool = True
    by_oid: str
    by_name: str
    at: datetime


class SmsConsent(Entity):
    """Partition `sms`, row `consent`."""

    sends_on_behalf_of_organization: Statement
    attendees_consented: Statement

    def public(self) -> dict:
        return self.model_dump(mode="json", exclude={"partition_key", "row_key"})


# --- numbers --------------------------------------------------------------------------------------
class NumberLinks(_Strict):
    endpoints: list[Annotated[str, Field(pattern=SLUG)]] = Field(
        max_length=MAX_ENDPOINTS_PER_NUMBER,
        description="The endpoints whose texts come from this number (one number, many "
        "endpoints; an endpoint has one number, so linking moves it from any other).",
    )

    @field_validator("endpoints")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        return sorted(set(values))


class SmsNumber(Entity):
    """Partition `sms`, row `number-{digits}`: a Communication Services number we send from."""

    number: str
    endpoints: list[str] = []
    linked_at: datetime
    linked_by: str

    def public(self) -> dict:
        return self.model_dump(mode="json", exclude={"partition_key", "row_key"})


class NumberOrderCreate(_Strict):
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = Field(
        default="US", description="ISO 3166 country of the number."
    )
    number_type: Literal["tollFree"] = Field(
        default="tollFree",
        description="Toll-free: verified for application-to-person texts in the US.",
    )
    area_code: Annotated[str, Field(pattern=r"^[0-9]{3}$")] | None = Field(
        default=None, description="A toll-free prefix (833, 844, ...); any when left out."
    )


class OrderState(StrEnum):
    SEARCHING = "searching"  # Communication Services is reserving a number
    PURCHASING = "purchasing"  # the reserved number is being bought
    SUCCEEDED = "succeeded"  # bought: it is in the numbers list, ready to link
    FAILED = "failed"


class NumberOrder(Entity):
    """Partition `sms`, row `order-{id}`: a search-then-purchase, polled by whoever asks.

    `poll_token` is the SDK's continuation token of the running operation: the state lives
    here, not in a process, so an order survives a restart and any instance can move it on.
    """

    id: str
    state: OrderState
    country: str
    number_type: str
    area_code: str | None = None
    poll_token: str | None = None
    search_id: str | None = None
    number: str | None = None
    cost: str | None = None
    problem: str | None = None
    created_at: datetime
    created_by: str
    updated_at: datetime

    def public(self) -> dict:
        return self.model_dump(
            mode="json", exclude={"partition_key", "row_key", "poll_token", "search_id"}
        )


# --- per-endpoint settings ------------------------------------------------------------------------
class Confirmations(_Strict):
    scheduled: bool = Field(default=True, strict=True, description="Text when booked.")
    updated: bool = Field(default=True, strict=True, description="Text when moved.")
    cancelled: bool = Field(default=True, strict=True, description="Text when cancelled.")


class QuietHours(_Strict):
    """No text goes out between `start` and `end` (clinic time); one that falls inside waits
    for `end`, or is skipped if the appointment comes first."""

    start: Annotated[str, Field(pattern=HHMM)] = "21:00"
    end: Annotated[str, Field(pattern=HHMM)] = "08:00"


class JoinWindow(_Strict):
    before_minutes: int = Field(default=30, ge=0, le=24 * 60)
    after_minutes: int = Field(default=60, ge=0, le=24 * 60)


def zones() -> list[str]:
    """Every IANA zone this deployment knows (the tzdata package): the schema's enum."""
    from zoneinfo import available_timezones

    return sorted(available_timezones())


def _zone_schema(schema: dict, patch: bool = False) -> None:
    if patch:
        schema.pop("default", None)  # absent: unchanged (see lib/endpoints/models._unchanged)
    schema["enum"] = zones()


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as America/Chicago") from None
    return value


def _distinct_offsets(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError("each reminder offset once")
    return sorted(values, reverse=True)


# The two checked types the settings and their patch share (each validated where it is used).
Zone = Annotated[str, Field(max_length=64), AfterValidator(_check_zone)]
Offsets = Annotated[
    list[Annotated[int, Field(ge=1, le=14 * 24 * 60)]], AfterValidator(_distinct_offsets)
]
_OFFSETS = {
    "max_length": 4,
    "description": "Reminders, in minutes before the start (1440 = a day before, 15 = a quarter "
    "hour before); at most 4, each different.",
}


class SmsSettingsFields(_Strict):
    enabled: bool = Field(default=False, strict=True, description="Texts on for this endpoint.")
    organization_name: Annotated[str, Field(min_length=1, max_length=40, pattern=LINE)] | None = (
        Field(default=None, description="Shown in every text; short, no clinical detail.")
    )
    language: Literal["en", "es"] = "en"
    time_zone: Zone = Field(
        default="America/Chicago",
        json_schema_extra=_zone_schema,
        description="The clinic's IANA zone: times in texts and quiet hours are in it.",
    )
    default_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = Field(
        default="US", description="Region of phone numbers the EHR sends without a country code."
    )
    confirmations: Confirmations = Confirmations()
    reminder_offsets_minutes: Offsets = Field(default_factory=lambda: [1440, 15], **_OFFSETS)
    quiet_hours: QuietHours = QuietHours()
    join_window: JoinWindow = JoinWindow()


class SmsSettingsUpdate(_Strict):
    """JSON merge patch of an endpoint's text settings: only the fields sent change. Only
    `organization_name` may be null; the others may be left out but never null."""

    enabled: Annotated[bool, Field(strict=True)] = _unchanged()
    organization_name: Annotated[str, Field(min_length=1, max_length=40, pattern=LINE)] | None = (
        None
    )
    language: Literal["en", "es"] = _unchanged()
    time_zone: Zone = Field(
        default=None, json_schema_extra=lambda schema: _zone_schema(schema, patch=True)
    )
    default_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = _unchanged()
    confirmations: Confirmations = _unchanged()
    reminder_offsets_minutes: Annotated[Offsets, Field(max_length=4)] = _unchanged()
    quiet_hours: QuietHours = _unchanged()
    join_window: JoinWindow = _unchanged()


class EndpointSms(Entity, SmsSettingsFields):
    """An endpoint's text settings: partition `ep-{id}`, row `sms`."""

    model_config = ConfigDict(extra="ignore", defer_build=True)
    endpoint: str
    updated_at: datetime | None = None
    updated_by: str | None = None

    def public(self, number: str | None) -> dict:
        data = self.model_dump(mode="json", exclude={"partition_key", "row_key"})
        data["number"] = number
        return data


# --- intake certificates --------------------------------------------------------------------------
class CertificateUpload(_Strict):
    certificate: Annotated[str, Field(min_length=100, max_length=20_000)] = Field(
        description="The EHR interface engine's public certificate: PEM, or base64 DER. Only "
        "the public part: a private key in the text is refused."
    )


class IntakeCertificate(Entity):
    """Partition `sms`, row `certificate-{environment}`."""

    environment: Environment
    pem: str
    thumbprint_sha256: str
    subject: str
    key_type: str
    not_before: datetime
    not_after: datetime
    uploaded_at: datetime
    uploaded_by: str

    def public(self) -> dict:
        return self.model_dump(mode="json", exclude={"partition_key", "row_key", "pem"})


def number_row(number: str) -> str:
    return "number-" + re.sub(r"[^0-9]", "", number)
