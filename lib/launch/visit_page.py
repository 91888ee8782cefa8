"""Where each person goes once their visit is open, and the clinician's visit page.

A patient goes straight to the meeting's lobby; a clinician to the visit page (or straight to
Teams, if the endpoint says so). The page's token is signed, names the visit and the endpoint,
and travels in the URL fragment: browsers never send a fragment to a server, so no request log,
proxy or telemetry records it; the page hands it to the status call in a header.

When the page comes straight from the EHR's launch, its token also carries that launch's EHR
access token and patient, sealed (AES-GCM, bound to the visit and purpose `visit-page-ehr`), for
"Send link by SMS" (visit_sms.py): it lives only in the browser's fragment and until the EHR
token expires, never in storage.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lib.ehr.profiles import Persona
from lib.endpoints import audit
from lib.endpoints.actor import Actor
from lib.endpoints.models import Endpoint
from lib.endpoints.service import EndpointService
from lib.privacy import PrivacyKeys
from lib.sealing import SealBroken, Sealer
from lib.smart.tokens import TokenResponse
from lib.storage import TableStore
from lib.visits.mappings import ClinicianMappings
from lib.visits.opening import DEFAULT_LENGTH
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError
from lib.web.http import Response
from lib.web.render import page
from lib.web.urls import Urls

PAGE_PURPOSE = "visit-page"
# The page's token lives for the visit's window and a grace period after it (a visit that runs
# over, a clinician writing notes), never less than a few minutes and never more than a day.
PAGE_GRACE = timedelta(hours=2)
PAGE_TTL_MIN = timedelta(minutes=15)
PAGE_TTL_MAX = timedelta(hours=24)
EHR_PURPOSE = "visit-page-ehr"
EHR_SLACK_SECONDS = 30  # an EHR token this close to its expiry is not worth a FHIR read


@dataclass(frozen=True)
class EhrAccess:
    """The launch's EHR access token and patient, as the visit page holds them (sealed)."""

    access_token: str
    patient_id: str
    expires_at: float  # epoch seconds

    @property
    def token(self) -> TokenResponse:
        return TokenResponse(access_token=self.access_token)

    @classmethod
    def of(cls, token: TokenResponse, patient_id: str | None) -> EhrAccess | None:
        """What a launch can hand on: nothing without a patient or a known lifetime."""
        expires = token.expires_at
        if not patient_id or expires is None:
            return None
        return cls(token.access_token, patient_id, expires)


def page_ttl(visit: Visit, now: datetime) -> int:
    """Seconds the visit page's token may live, from the visit's end (or start + an hour)."""
    end = visit.end or (visit.start or now) + DEFAULT_LENGTH
    ttl = end + PAGE_GRACE - now
    return int(min(max(ttl, PAGE_TTL_MIN), PAGE_TTL_MAX).total_seconds())


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


class VisitPages:
    def __init__(
        self,
        privacy: PrivacyKeys,
        visits: VisitStore,
        endpoints: EndpointService,
        urls: Urls,
        mappings: ClinicianMappings,
        store: TableStore,
        sealer: Sealer | None = None,
    ) -> None:
        self._sealer = sealer
        self._mappings = mappings
        self._store = store
        self._privacy = privacy
        self._visits = visits
        self._endpoints = endpoints
        self._urls = urls

    def arrival(
        self,
        endpoint: Endpoint,
        persona: Persona,
        visit: Visit,
        *,
        clinician_hash: str | None = None,
        ehr: EhrAccess | None = None,
    ) -> Response:
        """The redirect that takes a person into their open visit. `clinician_hash`: whose
        Microsoft mapping the page may undo (the clinician who launched); `ehr`: the launch's
        EHR access, when the page comes straight from it."""
        if persona == "patient" or endpoint.launch.open_teams_directly:
            return Response.redirect(visit.join_url or "")
        claims: dict[str, Any] = {"v": visit.key, "e": endpoint.id}
        if clinician_hash:
            claims["c"] = clinician_hash
        if ehr is not None and self._sealer is not None and ehr.expires_at > time.time():
            held = json.dumps({"a": ehr.access_token, "p": ehr.patient_id, "x": ehr.expires_at})
            claims["t"] = self._sealer.seal(held, visit_key=visit.key, purpose=EHR_PURPOSE)
        token = self._privacy.sign(
            claims,
            purpose=PAGE_PURPOSE,
            ttl_seconds=page_ttl(visit, datetime.now(UTC)),
        )
        return Response.redirect(f"{self._urls.visit_page}#{token}")

    def page(self) -> Response:
        """The page shell: its script reads the token from the fragment and asks `status`.

        It may be framed by any EHR: it shows nothing until the token (which only the launch
        hands out, in the fragment) is presented, and what it then shows comes from `status`.
        """
        resp = page(
            "visit.html",
            status_url=self._urls.visit_status,
            unlink_url=self._urls.visit_unlink,
            sms_url=self._urls.visit_sms,
        )
        resp.frame_ancestors = self._endpoints.ehr_origins()
        return resp

    def claims(self, token: str | None) -> tuple[dict[str, Any], Endpoint]:
        """The page token's claims and its endpoint; VISIT-LINK-INVALID for anything else."""
        claims = self._privacy.verify(token, purpose=PAGE_PURPOSE) if token else None
        endpoint = self._endpoints.snapshot().find(claims["e"]) if claims else None
        if not claims or endpoint is None:
            raise AppError("VISIT-LINK-INVALID")
        return claims, endpoint

    def ehr_access(self, claims: dict[str, Any]) -> EhrAccess | None:
        """The EHR access the page holds, if any and still usable."""
        if not claims.get("t") or self._sealer is None:
            return None
        try:
            held = json.loads(
                self._sealer.open(claims["t"], visit_key=claims["v"], purpose=EHR_PURPOSE)
            )
        except (SealBroken, ValueError):
            return None
        if held["x"] - EHR_SLACK_SECONDS <= time.time():
            return None
        return EhrAccess(held["a"], held["p"], held["x"])

    def status(self, token: str | None) -> Response:
        claims, endpoint = self.claims(token)
        # The visit and its state (lib/visits/timeline.py): one read of its partition.
        rows = self._visits.rows(claims["v"])
        visit = rows.visit
        if visit is None:
            raise AppError("VISIT-LINK-INVALID")
        state = rows.state()
        return Response.json(
            {
                "start": _iso(visit.start),
                "end": _iso(visit.end),
                "organization": endpoint.organization,
                "join_url": visit.join_url,
                "presence": {"provider": state.provider, "patient": state.patient},
                # The page counts the wait from these two, so a clinician's clock that is off
                # does not change how long the patient has waited.
                "waiting_since": _iso(state.waiting_since),
                "now": datetime.now(UTC).isoformat(),
                "lobby_wait_seconds": round(state.lobby_wait_seconds),
                "ended": state.ended_at is not None,
            }
        )

    def unlink(self, token: str | None) -> Response:
        """POST /api/visit/unlink: the clinician undoes their EHR-to-Microsoft mapping (the
        next launch asks for the Microsoft sign-in again). Audited as the clinician's own act."""
        claims = self._privacy.verify(token, purpose=PAGE_PURPOSE) if token else None
        endpoint = self._endpoints.snapshot().find(claims["e"]) if claims else None
        if not claims or endpoint is None or not claims.get("c"):
            raise AppError("VISIT-LINK-INVALID")
        removed = self._mappings.remove(endpoint.id, claims["c"])
        if removed is not None:
            who = Actor(oid=removed.entra_oid, name="the clinician (from the visit page)")
            entry = audit.entry(
                endpoint.partition_key,
                who,
                "mapping.unlink",
                f"endpoint:{endpoint.id}",
                {"mapping": removed.row_key, "entra_oid": removed.entra_oid},
                None,
            )
            audit.add(self._store, entry)
        return Response.json({"unlinked": removed is not None})
