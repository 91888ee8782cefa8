"""What the connector writes back, received as a real EHR would and recorded for tests and eyes.

- Epic's telehealth connection status web service (Epic stand-in only):
  `GET /epic/api/epic/2018/Telehealth/ContextLinking/SetExternalConnectionStatus?ConferenceID=
  &ExternalID=&ExternalIDType=&VendorName=&ConnectionStatus=`, authenticated with a service
  account (Basic + a known `Epic-Client-ID`) or a Backend Services bearer token. The codes and id
  types it takes are quirks (`connection_statuses`, `external_id_types`): Epic keeps them per
  customer.
- FHIR R4 `PATCH {base}/Appointment/{id}` (both stand-ins): a bearer token with a system/ or
  user/ Appointment write scope, `Content-Type: application/json-patch+json`, `If-Match` the
  current version (none: 412; another: 409, as Oracle Health answers). The patched Appointment
  is validated against the R4 model of `fhir.resources` (R4B, whose Appointment is R4's) and
  only `/status` may change; a bad one is a 422 OperationOutcome. Reads carry `meta.versionId`
  and `ETag: W/"{version}"`.

Recorded per appointment (`EhrStandIn.writes`): its status and version, every accepted write
(`accepted`), and the changes they made (`history`: a write that sets what is already there
changes nothing, as in a real EHR). The schedule page shows the status live.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from dev.sandbox.standin import json_response

if TYPE_CHECKING:
    from dev.sandbox.ehr.model import AccessToken

STATUS_PATH = "/api/epic/2018/Telehealth/ContextLinking/SetExternalConnectionStatus"
_WRITE_SCOPE = re.compile(r"^(system|user)/(Appointment|\*)\.(write|\*|c?r?u[ds]*)$")
EPIC_PARAMS = ("ConferenceID", "ExternalID", "ExternalIDType", "VendorName", "ConnectionStatus")
FHIR_JSON = "application/fhir+json; charset=utf-8"


@dataclass
class Written:
    status: str | None = None  # None: as the chart has it ("booked")
    version: int = 1
    connection: str | None = None  # Epic's telehealth status
    accepted: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


class Writes:
    """Thread-safe record of every appointment's writes."""

    def __init__(self) -> None:
        self._by_id: dict[str, Written] = {}
        self._lock = threading.Lock()
        # Appointments beyond the demo chart (benchmarks need thousands): copies of the first.
        self.extra: set[str] = set()

    def get(self, appointment_id: str) -> Written:
        with self._lock:
            return self._by_id.setdefault(appointment_id, Written())

    def record(self, appointment_id: str, what: str, value: str, via: str) -> bool:
        """An accepted write; whether it changed anything (then it is in `history`)."""
        with self._lock:
            w = self._by_id.setdefault(appointment_id, Written())
            entry = {"at": time.time(), "what": what, "value": value, "via": via}
            w.accepted.append(entry)
            before = w.connection if what == "connection" else w.status
            if before == value:
                return False
            if what == "connection":
                w.connection = value
            else:
                w.status, w.version = value, w.version + 1
            w.history.append(entry)
            return True

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                k: {
                    "status": w.status,
                    "version": w.version,
                    "connection": w.connection,
                    "accepted": len(w.accepted),
                    "history": list(w.history),
                }
                for k, w in self._by_id.items()
            }


def _outcome(status: int, code: str, text: str) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return json_response(body, status, {"Content-Type": FHIR_JSON})


def validate_appointment(resource: dict[str, Any]) -> str | None:
    """What is wrong with `resource` as an R4 Appointment, or None."""
    from fhir.resources.R4B.appointment import Appointment
    from pydantic import ValidationError

    try:
        Appointment.model_validate(resource)
    except ValidationError as exc:
        return str(exc.errors()[0].get("msg", "invalid"))[:200]
    return None


class WriteSurface:
    """Mixed into EhrStandIn (after FhirSurface, whose `_bearer` and chart it uses)."""

    def appointment_view(self, resource: dict[str, Any]) -> dict[str, Any]:
        """An Appointment as read: the written status and version over the chart's."""
        w = self.writes.get(resource["id"])
        meta = {**resource.get("meta", {}), "versionId": str(w.version)}
        return {**resource, "status": w.status or resource["status"], "meta": meta}

    def _write_token(self, request: Request) -> AccessToken | Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        if not any(_WRITE_SCOPE.match(s) for s in token.scopes):
            return _outcome(403, "forbidden", "The token's scopes do not allow Appointment writes.")
        return token

    def appointment_patch(
        self, request: Request, fhir_id: str, version: str, variant: str | None = None
    ) -> Response:
        import jsonpatch

        token = self._write_token(request)
        if isinstance(token, Response):
            return token
        if request.mimetype != "application/json-patch+json":
            return _outcome(415, "not-supported", "Send application/json-patch+json.")
        current = self._appointment(fhir_id)
        if current is None:
            return _outcome(404, "not-found", f"Appointment/{fhir_id} not found.")
        if_match = request.headers.get("If-Match")
        if not if_match:
            return _outcome(412, "conflict", "If-Match is required.")
        expected = f'W/"{current["meta"]["versionId"]}"'
        if if_match.strip() != expected:
            return _outcome(409, "conflict", "Version conflict: read the Appointment again.")
        try:
            patch = jsonpatch.JsonPatch.from_string(request.get_data(as_text=True))
            patched = patch.apply(current)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, ValueError) as exc:
            return _outcome(400, "invalid", f"Not a JSON Patch that applies: {exc}"[:200])
        if {k: v for k, v in patched.items() if k != "status"} != {
            k: v for k, v in current.items() if k != "status"
        }:
            return _outcome(422, "business-rule", "Only /status may be patched here.")
        problem = validate_appointment(patched)
        if problem:
            return _outcome(422, "invalid", f"Not a valid R4 Appointment: {problem}")
        self.writes.record(fhir_id, "status", patched["status"], f"fhir:{token.client_id}")
        w = self.writes.get(fhir_id)
        self.connection_status[fhir_id] = patched["status"]
        headers = {"ETag": f'W/"{w.version}"', "Content-Type": FHIR_JSON}
        if request.headers.get("Prefer") == "return=minimal":
            return Response(status=200, headers=headers)
        return json_response(self._appointment(fhir_id), 200, headers)

    def _appointment(self, fhir_id: str) -> dict[str, Any] | None:
        from dev.sandbox.ehr.chart import Chart
        from dev.sandbox.ehr.data import today

        chart = Chart(self.vendor, self.fhir_base)
        if fhir_id in self.writes.extra:
            resource = chart.appointment_resource(chart.slots()[0], today())
            return self.appointment_view({**resource, "id": fhir_id})
        slot = chart.slot(fhir_id)
        if slot is None or chart.id_of(slot) != fhir_id:
            return None
        return self.appointment_view(chart.appointment_resource(slot, today()))

    def add_appointments(self, ids: list[str]) -> None:
        """More appointments to write to (copies of the chart's first, under these ids)."""
        self.writes.extra |= set(ids)

    # -- Epic ----------------------------------------------------------------------------------
    def _epic_caller(self, request: Request) -> str | Response:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            token = self._write_token(request)
            return token if isinstance(token, Response) else f"oauth:{token.client_id}"
        client_id = request.headers.get("Epic-Client-ID", "")
        if self.clients.get(client_id) is None:
            return json_response({"Message": "Unknown or missing Epic-Client-ID."}, 401)
        account = self.quirks.get("service_account") or {}
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if header[:6].lower() != "basic " or (user, password) != (
            account.get("username"),
            account.get("password"),
        ):
            return json_response({"Message": "Service account credentials not accepted."}, 401)
        return f"service-account:{user}"

    def set_connection_status(self, request: Request) -> Response:
        caller = self._epic_caller(request)
        if isinstance(caller, Response):
            return caller
        args = {name: request.args.get(name, "") for name in EPIC_PARAMS}
        missing = [name for name, value in args.items() if not value]
        if missing:
            return json_response({"Message": f"Missing: {', '.join(missing)}"}, 400)
        if args["ExternalIDType"] not in self.quirks["external_id_types"]:
            return json_response({"Message": "Unknown ExternalIDType."}, 400)
        if args["ConnectionStatus"] not in self.quirks["connection_statuses"]:
            return json_response({"Message": "Unknown ConnectionStatus."}, 400)
        if self._appointment(args["ExternalID"]) is None:
            return json_response({"Message": "No such appointment."}, 404)
        self.writes.record(args["ExternalID"], "connection", args["ConnectionStatus"], caller)
        self.connection_status[args["ExternalID"]] = args["ConnectionStatus"]
        return json_response({"Success": True})

    def writes_json(self, request: Request) -> Response:
        """The schedule page's live cells: `{appointment id: shown status}`."""
        return json_response(dict(self.connection_status), headers={"Cache-Control": "no-store"})
