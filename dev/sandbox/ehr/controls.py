"""Sandbox-only controls of an EHR stand-in, under ``/_sandbox/{name}/``: mint launches, manage
clients, quirks, launch URLs, rotate the signing key, list the demo data."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dev.sandbox.ehr.data import (
    CLINICIANS,
    PATIENTS,
    today,
)
from dev.sandbox.ehr.model import QUIRKS, copy_quirks
from dev.sandbox.ehr.variants import VARIANTS
from dev.sandbox.standin import json_response, read_json


class Controls:
    """Mixed into EhrStandIn."""

    def control_routes(self) -> list[Rule]:
        return [
            Rule("/", endpoint=self.c_summary, methods=["GET"]),
            Rule("/launch", endpoint=self.c_launch, methods=["POST"]),
            Rule("/clients", endpoint=self.c_clients, methods=["GET"]),
            Rule("/clients", endpoint=self.c_put_client, methods=["POST"]),
            Rule("/clients/<client_id>", endpoint=self.c_client, methods=["GET", "DELETE"]),
            Rule("/quirks", endpoint=self.c_quirks, methods=["GET", "POST"]),
            Rule("/settings", endpoint=self.c_settings, methods=["GET", "POST"]),
            Rule("/rotate-key", endpoint=self.c_rotate_key, methods=["POST"]),
            Rule("/data", endpoint=self.c_data, methods=["GET"]),
        ]

    # -- controls (/_sandbox/{name}/...) ----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "fhir_base": self.fhir_base,
            "dstu2_base": self.dstu2_base,
            "smart_configuration": self.smart_configuration_url,
            "authorize": self.authorize_url,
            "authorize_urls": self.authorize_urls,
            "token": self.token_url,
            "issuer": self.issuer,
            "openid_configuration": self.openid_configuration_url,
            "jwks_uri": self.jwks_uri,
            "schedule": self.schedule_url,
            "portal": self.portal_url,
            "launch_urls": dict(self.launch_urls),
            "variants": {
                kind: {"base": self.variant_base(kind), "summary": v.summary, "expect": v.expect}
                for kind, v in VARIANTS.items()
            },
            "clients": [c.to_json() for c in self.clients.all()],
            "quirks": copy_quirks(self.quirks),
            "quirk_help": QUIRKS,
        }

    def c_summary(self, request: Request) -> Response:
        return json_response(self.summary())

    def c_launch(self, request: Request) -> Response:
        body = read_json(request)
        allowed = {"kind", "clinician", "patient", "appointment", "iss", "variant"}
        unknown = set(body) - allowed
        if unknown:
            return _bad_control(f"unknown keys {sorted(unknown)}; known: {sorted(allowed)}")
        try:
            iss = body.get("iss")
            if body.get("variant"):
                iss = self.variant_base(body["variant"])
            launch = self.mint_launch(
                body.get("kind", "provider"),
                clinician=body.get("clinician"),
                patient=body.get("patient"),
                appointment=body.get("appointment"),
                iss=iss,
            )
        except (ValueError, KeyError) as exc:
            return _bad_control(str(exc))
        return json_response(launch.to_json(self.chart), 201)

    def c_clients(self, request: Request) -> Response:
        return json_response({"clients": [c.to_json() for c in self.clients.all()]})

    def c_put_client(self, request: Request) -> Response:
        """Create a client, or change the given fields of an existing one."""
        body = read_json(request)
        try:
            existing = self.clients.get(body.get("client_id"))
            if existing is not None:
                client = self.clients.update(existing.client_id, body)
            else:
                client = self.register_client(**body)
        except (ValueError, TypeError) as exc:
            return _bad_control(str(exc))
        return json_response(client.to_json(), 200 if existing else 201)

    def c_client(self, request: Request, client_id: str) -> Response:
        if request.method == "DELETE":
            removed = self.clients.remove(client_id)
            return json_response({"removed": removed}, 200 if removed else 404)
        client = self.clients.get(client_id)
        if client is None:
            return json_response({"error": "unknown client"}, 404)
        return json_response(client.to_json())

    def c_quirks(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.set_quirks(**read_json(request))
            except ValueError as exc:
                return _bad_control(str(exc))
        return json_response({"quirks": copy_quirks(self.quirks), "help": QUIRKS})

    def c_settings(self, request: Request) -> Response:
        if request.method == "POST":
            body = read_json(request)
            unknown = set(body) - {"provider_launch_url", "patient_launch_url"}
            if unknown:
                return _bad_control(f"unknown settings {sorted(unknown)}")
            try:
                self.set_launch_urls(
                    body.get("provider_launch_url"), body.get("patient_launch_url")
                )
            except ValueError as exc:
                return _bad_control(str(exc))
        return json_response(
            {
                "provider_launch_url": self.launch_urls["provider"],
                "patient_launch_url": self.launch_urls["patient"],
            }
        )

    def c_rotate_key(self, request: Request) -> Response:
        keep = read_json(request).get("keep_previous", True)
        return json_response({"kid": self.rotate_key(bool(keep))})

    def c_data(self, request: Request) -> Response:
        chart, day = self.chart, today()
        return json_response(
            {
                "clinicians": [
                    {
                        "key": c.key,
                        "name": c.name,
                        "id": chart.id_of(c),
                        "username": c.usernames[self.vendor],
                    }
                    for c in CLINICIANS
                ],
                "patients": [
                    {"key": p.key, "name": p.name, "id": chart.id_of(p)} for p in PATIENTS
                ],
                "appointments": [
                    {
                        "key": s.key,
                        "id": chart.id_of(s),
                        "encounter": s.encounter_ids[self.vendor],
                        "start": s.start(day).isoformat(),
                        "clinician": s.clinician,
                        "patient": s.patient,
                    }
                    for s in chart.slots()
                ],
            }
        )


def _bad_control(message: str) -> Response:
    return json_response({"error": message}, 400)
