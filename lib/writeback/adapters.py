"""The writes themselves: Epic's telehealth connection status, and FHIR R4 Appointment PATCH.

Both speak through `EhrCalls`, which adds the credentials, asks once more with a new token after
a 401, and turns every answer that is not a success into a `WriteFailure` of the right kind.

- `EpicStatus`: `GET {server}{path}?ConferenceID=&ExternalID=&ExternalIDType=&VendorName=
  &ConnectionStatus=` (PROTOCOLS.md): the server is the FHIR base less `/api/FHIR/...`, so the
  call (and a service account's password) never goes to another host. Status codes and the id
  type come from the endpoint: Epic keeps them in customer guides.
- `FhirAppointment` (Oracle Health, any FHIR R4 server): a fresh read for the ETag, then
  `PATCH Appointment/{id}` with a JSON Patch replacing `/status`, `If-Match` that ETag; a 409 or
  412 (someone changed it meanwhile) is answered by reading and applying again, a few times.
  An Appointment already in the wanted status is not written again.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import urlencode

from lib.endpoints.models import Endpoint
from lib.net.http import HttpResponse, NotServing, OutboundHttp, host_of
from lib.net.retry import retry_after_seconds
from lib.web.errors import AppError
from lib.writeback.credentials import Credentials
from lib.writeback.errors import WriteFailure

# Answers no retry can change. Any other 4xx but these transient ones is permanent too.
TRANSIENT_4XX = frozenset({408, 409, 412, 423, 425})
DEFAULT_RETRY_AFTER = 10.0  # a 429 / 503 without Retry-After
MAX_RETRY_AFTER = 900.0  # a longer ask is capped: the queue's message would outlive it
CONFLICT_ROUNDS = 3  # read-and-apply rounds after 409 / 412 before the queue retries
# Failures of our own side of a call that a retry will not mend.
_PERMANENT_HTTP = {"DISC-HOSTS-MOVED", "DISC-ADDRESS-NOT-ALLOWED", "DISC-REDIRECT"}

DEFAULT_CODES: dict[str, dict[str, str]] = {
    # Epic: names as the sandbox and our docs use them; real ones come from the customer guide.
    "epic": {"connected": "Connected", "in_visit": "InVisit", "left": "Disconnected"},
    # R4 Appointment.status: waiting to be seen, seen (checked in), done.
    "fhir": {"connected": "arrived", "in_visit": "checked-in", "left": "fulfilled"},
}


def _issue_code(response: HttpResponse) -> str:
    """The OperationOutcome's first issue code (e.g. `not-found`), never its free text."""
    try:
        body = json.loads(response.body or b"{}")
        code = body.get("issue", [{}])[0].get("code", "")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return code if isinstance(code, str) and code.replace("-", "").isalnum() else ""


def failure_of(response: HttpResponse, what: str) -> WriteFailure:
    status = response.status
    issue = _issue_code(response)
    detail = f"{what}: HTTP {status}" + (f" ({issue})" if issue else "")
    if status in (429, 503):
        asked = retry_after_seconds(response.headers.get("Retry-After"))
        seconds = DEFAULT_RETRY_AFTER if asked is None else min(max(asked, 1.0), MAX_RETRY_AFTER)
        return WriteFailure.later(seconds, detail, status)
    if 400 <= status < 500 and status not in TRANSIENT_4XX:
        return WriteFailure.permanent("WB-EHR-REFUSED", detail, status)
    return WriteFailure.transient("WB-EHR-UNAVAILABLE", detail, status)


class EhrCalls:
    def __init__(self, http: OutboundHttp, credentials: Credentials) -> None:
        self._http = http
        self._credentials = credentials

    def call(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        what: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse:
        """One call; a 401 gets one more try with a new token. Non-2xx answers are returned."""
        for fresh in (False, True):
            auth = self._credentials.headers(endpoint)
            response = self._send(method, url, what, {**(headers or {}), **auth}, body)
            if response.status != 401:
                return response
            self._credentials.forget(endpoint)
            if fresh or "Bearer" not in auth.get("Authorization", ""):
                break  # a service account's password gets no second chance: it is the same
        raise WriteFailure.permanent("WB-TOKEN-REFUSED", f"{what}: HTTP 401", 401)

    def _send(
        self, method: str, url: str, what: str, headers: dict[str, str], body: bytes | None
    ) -> HttpResponse:
        try:
            return self._http.request(
                method, url, headers=headers, data=body, allowed_hosts={host_of(url)}
            )
        except NotServing as err:
            raise WriteFailure.transient("WB-EHR-UNAVAILABLE", f"{what}: {err.detail}") from None
        except AppError as err:
            kind = WriteFailure.permanent if err.code in _PERMANENT_HTTP else WriteFailure.transient
            raise kind("WB-EHR-UNAVAILABLE", f"{what}: {err.code}") from None


class Adapter(Protocol):
    def write(self, endpoint: Endpoint, appointment_id: str, code: str, visit_key: str) -> bool:
        """Make the EHR show `code`; False when it showed it already (nothing written)."""
        ...


class EpicStatus:
    def __init__(self, calls: EhrCalls) -> None:
        self._calls = calls

    @staticmethod
    def url(endpoint: Endpoint) -> str:
        base = endpoint.fhir_base_url
        server = base.split("/api/FHIR/", 1)[0] if "/api/FHIR/" in base else base
        return server + endpoint.writeback.epic.path

    def write(self, endpoint: Endpoint, appointment_id: str, code: str, visit_key: str) -> bool:
        options = endpoint.writeback.epic
        query = urlencode(
            {
                "ConferenceID": visit_key,  # our visit's opaque key: names no one
                "ExternalID": appointment_id,
                "ExternalIDType": options.external_id_type,
                "VendorName": options.vendor_name,
                "ConnectionStatus": code,
            }
        )
        response = self._calls.call(
            endpoint, "GET", f"{self.url(endpoint)}?{query}", "epic status",
            headers={"Accept": "application/json"},
        )  # fmt: skip
        if not 200 <= response.status < 300:
            raise failure_of(response, "epic status")
        return True


class FhirAppointment:
    def __init__(self, calls: EhrCalls) -> None:
        self._calls = calls

    def write(self, endpoint: Endpoint, appointment_id: str, code: str, visit_key: str) -> bool:
        url = f"{endpoint.fhir_base_url}/Appointment/{appointment_id}"
        for _ in range(CONFLICT_ROUNDS):
            status, etag = self._read(endpoint, url)
            if status == code:
                return False
            patch = json.dumps([{"op": "replace", "path": "/status", "value": code}]).encode()
            response = self._calls.call(
                endpoint, "PATCH", url, "appointment patch",
                headers={
                    "Content-Type": "application/json-patch+json",
                    "Accept": "application/fhir+json",
                    "If-Match": etag,
                    "Prefer": "return=minimal",
                },
                body=patch,
            )  # fmt: skip
            if response.status in (409, 412):
                continue  # changed since our read: read it again and apply again
            if not 200 <= response.status < 300:
                raise failure_of(response, "appointment patch")
            return True
        raise WriteFailure.transient(
            "WB-EHR-UNAVAILABLE", f"appointment patch: version conflict {CONFLICT_ROUNDS} times"
        )

    def _read(self, endpoint: Endpoint, url: str) -> tuple[str | None, str]:
        response = self._calls.call(
            endpoint, "GET", url, "appointment read", headers={"Accept": "application/fhir+json"}
        )
        if response.status != 200:
            raise failure_of(response, "appointment read")
        try:
            resource: Any = json.loads(response.body)
        except ValueError:
            raise WriteFailure.transient(
                "WB-EHR-UNAVAILABLE", "appointment read: not JSON"
            ) from None
        version = (
            (resource.get("meta") or {}).get("versionId") if isinstance(resource, dict) else None
        )
        etag = response.headers.get("ETag") or (f'W/"{version}"' if version else "")
        if not etag:
            raise WriteFailure.permanent("WB-EHR-REFUSED", "appointment read: no ETag or version")
        return resource.get("status"), etag
