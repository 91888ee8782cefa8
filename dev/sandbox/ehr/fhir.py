"""The FHIR surface of an EHR stand-in: discovery (SMART configuration, metadata, the issuer's
OpenID configuration and JWKS, the misbehaving variants) and bearer-token reads and search."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from dev.sandbox.ehr import discovery, idtoken
from dev.sandbox.ehr import scopes as scope_tools
from dev.sandbox.ehr.chart import Chart
from dev.sandbox.ehr.data import (
    today,
)
from dev.sandbox.ehr.model import AccessToken
from dev.sandbox.ehr.variants import VARIANTS, VariantContext, move_host
from dev.sandbox.standin import json_response

FHIR_JSON = "application/fhir+json; charset=utf-8"


class FhirSurface:
    """Mixed into EhrStandIn."""

    # -- discovery ------------------------------------------------------------------------------
    def _base(self, version: str, variant: str | None) -> str:
        return self.variant_base(variant) if variant else self.url(self.fhir_paths[version])

    def _smart_doc(self, version: str, variant: str | None) -> dict[str, Any]:
        authorize, token = self.authorize_url, self.token_url
        host = self.quirks["advertised_host"]
        if host and not variant:
            other = int(urlsplit(self.state.base_url).port or 443)
            authorize, token = move_host(authorize, host, other), move_host(token, host, other)
        doc = discovery.smart_configuration(
            issuer=self.issuer,
            jwks_uri=self.jwks_uri,
            authorization_endpoint=authorize,
            token_endpoint=token,
            permission_v2=self.permission_v2,
            iss_parameter=bool(self.quirks["rfc9207_iss"]),
        )
        if variant and VARIANTS[variant].edit is not None:
            doc = VARIANTS[variant].edit(doc, self._variant_context(variant, "smart"))  # type: ignore[misc]
        return doc

    def _variant_context(self, variant: str, document: str) -> VariantContext:
        tail = "/.well-known/smart-configuration" if document == "smart" else "/metadata"
        return VariantContext(
            port=int(urlsplit(self.state.base_url).port or 443),
            normal_url=self.fhir_base + tail,
            slow_seconds=float(self.quirks["slow_seconds"]),
        )

    def _misbehave(self, variant: str | None, document: str) -> Response | None:
        """The variant's own answer, if it replaces the document (after sleeping if slow)."""
        if variant is None:
            return None
        spec = VARIANTS.get(variant)
        if spec is None:
            return _outcome(404, "not-found", f"No variant {variant!r}.")
        ctx = self._variant_context(variant, document)
        if spec.sleep:
            time.sleep(ctx.slow_seconds)
        if spec.answer is None:
            return None
        status, headers, body = spec.answer(ctx)
        return Response(body, status=status, headers=headers)

    def smart_configuration(
        self, request: Request, version: str, variant: str | None = None
    ) -> Response:
        answer = self._misbehave(variant, "smart")
        if answer is not None:
            return answer
        return json_response(self._smart_doc(version, variant))

    def metadata(self, request: Request, version: str, variant: str | None = None) -> Response:
        answer = self._misbehave(variant, "metadata")
        if answer is not None:
            return answer
        doc = discovery.capability_statement(
            self._smart_doc(version, variant),
            self._base(version, variant),
            version,
            self.software,
            today().isoformat(),
        )
        return _fhir_json(doc)

    def openid_configuration(self, request: Request) -> Response:
        return json_response(
            discovery.openid_configuration(
                issuer=self.issuer,
                jwks_uri=self.jwks_uri,
                authorization_endpoint=self.authorize_url,
                token_endpoint=self.token_url,
            )
        )

    def jwks_endpoint(self, request: Request) -> Response:
        return json_response(idtoken.jwks(self.keys), headers={"Cache-Control": "max-age=300"})

    # -- FHIR ----------------------------------------------------------------------------------
    def _bearer(self, request: Request) -> AccessToken | Response:
        header = request.headers.get("Authorization", "")
        value = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with self._lock:
            token = self._stores.tokens.get(value) if value else None
        if token is None or token.expires_at < time.time():
            response = _outcome(401, "login", "A valid bearer access token is required.")
            error = ', error="invalid_token"' if value else ""
            response.headers["WWW-Authenticate"] = f'Bearer realm="{self.fhir_base}"{error}'
            return response
        return token

    def fhir_read(
        self,
        request: Request,
        resource_type: str,
        fhir_id: str,
        version: str,
        variant: str | None = None,
    ) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        if version != "R4" or resource_type not in scope_tools.RESOURCES:
            return _outcome(404, "not-supported", f"{resource_type} reads are not offered here.")
        if not scope_tools.allows(token.scopes, resource_type, "read"):
            return _outcome(403, "forbidden", f"The token's scopes do not allow {resource_type}.")
        if resource_type == "Appointment" and variant is None:
            # As write-back left it, with its version and ETag (writes.py).
            found = self._appointment(fhir_id)
            if found is None:
                return _outcome(404, "not-found", f"Appointment/{fhir_id} not found.")
            response = _fhir_json(found)
            response.headers["ETag"] = f'W/"{found["meta"]["versionId"]}"'
            return response
        chart = Chart(self.vendor, self._base(version, variant))
        resource = chart.resource(resource_type, fhir_id)
        if resource is None:
            return _outcome(404, "not-found", f"{resource_type}/{fhir_id} not found.")
        return _fhir_json(resource)

    def fhir_search(
        self, request: Request, resource_type: str, version: str, variant: str | None = None
    ) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        if version != "R4" or resource_type != "Appointment":
            return _outcome(404, "not-supported", f"{resource_type} search is not offered here.")
        if not scope_tools.allows(token.scopes, resource_type, "search"):
            return _outcome(403, "forbidden", "The token's scopes do not allow Appointment.")
        args = request.args
        dates = args.getlist("date")
        refs = {
            name: _ref_id(args.get(name), kind)
            for name, kind in (
                ("practitioner", "Practitioner"),
                ("patient", "Patient"),
                ("location", "Location"),
            )
            if args.get(name)
        }
        if not dates or not refs:
            return _outcome(
                400,
                "required",
                "Appointment search needs date and one of patient, practitioner or location.",
            )
        try:
            tests = [_date_test(d) for d in dates]
        except ValueError as exc:
            return _outcome(400, "value", str(exc))
        chart = Chart(self.vendor, self._base(version, variant))
        day = today()
        found = chart.slots(clinician=refs.get("practitioner"), patient=refs.get("patient"))
        if ("practitioner" in refs and chart.clinician(refs["practitioner"]) is None) or (
            "patient" in refs and chart.patient(refs["patient"]) is None
        ):
            found = []
        if "location" in refs:
            dept = chart.department(refs["location"])
            found = [
                s
                for s in found
                if dept is not None
                and (c := chart.clinician(s.clinician))
                and c.department == dept.key
            ]
        found = [s for s in found if all(test(s.start(day)) for test in tests)]
        resources = [self.appointment_view(chart.appointment_resource(s, day)) for s in found]
        self_url = f"{chart.base_url}/Appointment?{request.query_string.decode()}"
        return _fhir_json(chart.search_bundle(resources, self_url))


def _ref_id(value: str | None, resource_type: str) -> str:
    return (value or "").removeprefix(f"{resource_type}/")


def _date_test(value: str) -> Callable[[dt.datetime], bool]:
    """A FHIR date search parameter (eq / ge / gt / le / lt prefix; date or dateTime)."""
    prefix = value[:2] if value[:2] in ("eq", "ge", "gt", "le", "lt", "ne") else "eq"
    raw = value[2:] if value[:2] == prefix else value
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            low = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
            high = low + dt.timedelta(days=1)
        else:
            low = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if low.tzinfo is None:
                low = low.replace(tzinfo=dt.UTC)
            high = low + dt.timedelta(seconds=1)
    except ValueError:
        raise ValueError(f"date {value!r} is not a FHIR date or dateTime") from None
    tests: dict[str, Callable[[dt.datetime], bool]] = {
        "eq": lambda t: low <= t < high,
        "ne": lambda t: not (low <= t < high),
        "ge": lambda t: t >= low,
        "gt": lambda t: t >= high,
        "le": lambda t: t < high,
        "lt": lambda t: t < low,
    }
    return tests[prefix]


def _fhir_json(resource: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(resource), status=status, content_type=FHIR_JSON)


def _outcome(status: int, code: str, text: str) -> Response:
    return _fhir_json(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        },
        status,
    )
