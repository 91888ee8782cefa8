"""The EHR's answer to a launch: code -> tokens -> verified identity -> context -> the visit.

A clinician whose EHR user has no Microsoft mapping yet goes through the one-time Microsoft
sign-in first (microsoft.py) and comes back to the visit opener. The EHR's tokens are used within
this request only (one FHIR read of the appointment for its times) and never stored (the
clinician's visit page holds the access token sealed in its own token, for "Send link by SMS"). The
appointment's FHIR reference is kept sealed for the visit's EHR write-back (lib/visits/sealed.py),
written alongside the person's "arrived" event so it adds no round trip to the launch.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from lib.ehr.profiles import Persona
from lib.endpoints.client import EndpointClient, SmartDeps, scopes_for
from lib.endpoints.service import EndpointService
from lib.launch.microsoft import MicrosoftSignIn
from lib.launch.visit_page import EhrAccess, VisitPages
from lib.net.overlap import together
from lib.privacy import PrivacyKeys
from lib.signin.sessions import SessionStore, SignInSession
from lib.smart.context import LaunchContext, extract_context
from lib.smart.id_token import FHIR_ID, parse_reference
from lib.smart.scopes import missing
from lib.smart.tokens import TokenResponse
from lib.visits.keys import clinician_hash, visit_key
from lib.visits.mappings import ClinicianMappings
from lib.visits.opening import PendingVisit, VisitOpener
from lib.visits.sealed import APPOINTMENT_ID, SealedValues, purge_after_visit
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError
from lib.web.http import Response


@dataclass(frozen=True)
class SignedInLaunch:
    """What a completed EHR sign-in says: the tokens, the context, and the visit it is about."""

    client: EndpointClient
    persona: Persona
    token: TokenResponse
    context: LaunchContext
    subject: tuple[str, str]  # ("Appointment" | "Encounter", FHIR id)
    visit_key: str
    read: dict[str, Any] | None = None  # the resource read to find the subject, if any
    existing: Visit | None = None  # the visit, when it exists (read by the persona's path)


def _held(launch: SignedInLaunch) -> EhrAccess | None:
    """What the clinician's visit page may hold of this launch: its EHR token and patient, for
    "Send link by SMS" (sealed in the page's token, lib/launch/visit_page.py)."""
    if launch.persona != "provider":
        return None
    return EhrAccess.of(launch.token, launch.context.patient_id)


def practitioners(resource: Mapping[str, Any]) -> list[str]:
    """Practitioner ids of an Appointment's participants (`actor`) or an Encounter's
    (`individual`): relative, absolute or versioned references."""
    found = []
    for participant in resource.get("participant") or []:
        participant = participant if isinstance(participant, dict) else {}
        who = participant.get("actor") or participant.get("individual") or {}
        parsed = parse_reference(str(who.get("reference") or "")) if isinstance(who, dict) else None
        if parsed and parsed[0] == "Practitioner":
            found.append(parsed[1])
    return found


def _times(resource: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """An Appointment's start / end, or an Encounter's period."""
    period = resource.get("period") if resource.get("resourceType") == "Encounter" else resource
    period = period if isinstance(period, dict) else {}
    return _instant(period.get("start")), _instant(period.get("end"))


def _appointment_of(encounter: Mapping[str, Any]) -> str | None:
    """The Appointment an Encounter was booked from (`Encounter.appointment`), if it names one."""
    for ref in encounter.get("appointment") or []:
        parsed = parse_reference(str(ref.get("reference") or "")) if isinstance(ref, dict) else None
        if parsed and parsed[0] == "Appointment":
            return parsed[1]
    return None


def _instant(value: Any) -> datetime | None:
    """A FHIR instant (with its offset); anything else costs only the visit's times."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _subject(
    client: EndpointClient, token: TokenResponse, context: LaunchContext
) -> tuple[tuple[str, str], dict[str, Any] | None]:
    """What the visit is about, and the resource read to find it out (None: nothing read).

    An Appointment id is used as it is. An identifier-only Appointment (SMART 2.1) is searched
    for. An Encounter is read: it has the times and the clinicians, and when it names the
    Appointment it was booked from, the visit is that appointment's, so a launch from either
    meets at one visit.
    """
    if context.appointment_id:
        return ("Appointment", context.appointment_id), None
    if context.appointment_identifier:
        found = client.search_one(
            token, "Appointment", {"identifier": context.appointment_identifier}
        )
        if found.get("id") and FHIR_ID.match(str(found["id"])):
            return ("Appointment", str(found["id"])), found
    if context.encounter_id:
        encounter = client.read(token, "Encounter", context.encounter_id)
        appointment = _appointment_of(encounter)
        if appointment:
            return ("Appointment", appointment), encounter
        return ("Encounter", context.encounter_id), encounter
    raise AppError("LAUNCH-NO-APPOINTMENT")


class LaunchCompletion:
    def __init__(
        self,
        endpoints: EndpointService,
        smart: SmartDeps,
        privacy: PrivacyKeys,
        visits: VisitStore,
        mappings: ClinicianMappings,
        opener: VisitOpener,
        microsoft: MicrosoftSignIn,
        pages: VisitPages,
        sessions: SessionStore,
        sealed: SealedValues,
    ) -> None:
        self._sessions = sessions
        self._sealed = sealed
        self._endpoints = endpoints
        self._smart = smart
        self._privacy = privacy
        self._visits = visits
        self._mappings = mappings
        self._opener = opener
        self._microsoft = microsoft
        self._pages = pages

    def complete(self, session: SignInSession, query: Mapping[str, str]) -> Response:
        """The callback's completer for `provider` and `patient` sessions (`uses_state`).

        The state's single-use write and the code's redemption run side by side; a write that
        finds the state used raises LAUNCH-STATE-REUSED first, and the tokens are dropped unused.
        """
        _, (client, token, claims) = together(
            lambda: self._sessions.use(session), lambda: self._redeem(session, query)
        )
        launch = self._sign_in(client, session, token, claims)
        return self._provider(launch) if launch.persona == "provider" else self._patient(launch)

    def _redeem(
        self, session: SignInSession, query: Mapping[str, str]
    ) -> tuple[EndpointClient, TokenResponse, dict[str, Any]]:
        # deleted or disabled during the sign-in: stop here, before the code is redeemed
        client = self._smart.client(self._endpoints.launchable(session.endpoint_id or ""))
        token, claims = client.redeem(session, client.code_from(query))
        return client, token, claims

    def _sign_in(
        self,
        client: EndpointClient,
        session: SignInSession,
        token: TokenResponse,
        claims: dict[str, Any],
    ) -> SignedInLaunch:
        persona: Persona = "provider" if session.kind == "provider" else "patient"
        absent = missing(
            scopes_for(client.endpoint, persona), token.granted_scopes, has_id_token=True
        )
        if absent:
            raise AppError("LAUNCH-SCOPE-NOT-GRANTED", "Not granted: " + " ".join(absent))
        field_map = client.profile.field_map(client.endpoint.launch.field_map)
        context = extract_context(token, id_claims=claims, field_map=field_map)
        subject, read = _subject(client, token, context)
        key = visit_key(self._privacy, client.endpoint, *subject)
        return SignedInLaunch(client, persona, token, context, subject, key, read)

    def _seal(self, launch: SignedInLaunch, end: datetime | None) -> None:
        """Keep the appointment's FHIR reference for write-back: sealed, bound to this visit and
        purpose, purged WRITEBACK_WINDOW after the visit's end. Again on each launch (the same
        value, a purge time that follows the visit's known end). An Encounter-only visit has no
        appointment to write back to."""
        kind, fhir_id = launch.subject
        if kind == "Appointment":
            reference = f"Appointment/{fhir_id}"
            self._sealed.put(launch.visit_key, APPOINTMENT_ID, reference, purge_after_visit(end))

    def _pending(self, launch: SignedInLaunch) -> tuple[PendingVisit, list[str]]:
        """A new visit's times and department, and the appointment's clinicians.

        Only a new visit reads the appointment (a launch into an existing one skips that call),
        and not twice: an Encounter or a search already read tells the times and clinicians.
        """
        kind, fhir_id = launch.subject
        resource = launch.read
        if resource is None:
            resource = (
                launch.client.read(launch.token, kind, fhir_id) if kind == "Appointment" else {}
            )
        start, end = _times(resource)
        pending = PendingVisit(
            visit_key=launch.visit_key, start=start, end=end, department=launch.context.department
        )
        return pending, practitioners(resource)

    def _open(
        self,
        launch: SignedInLaunch,
        pending: PendingVisit | None,
        organizer: str,
        clinician_hash: str | None = None,
    ) -> Response:
        endpoint = launch.client.endpoint
        times = None
        if pending is None:  # an existing visit: its times are in the visit row, except when
            # it was claimed by a launch that read them alongside createOrGet and never attached
            # a meeting (it failed or crashed): if this launch then makes the meeting, it reads
            # them itself, after createOrGet (only then, so a visit with a meeting costs nothing).
            def times() -> tuple[datetime | None, datetime | None]:
                known = self._pending(launch)[0]
                return known.start, known.end

        pending = pending or PendingVisit(visit_key=launch.visit_key)
        visit = self._opener.open(
            endpoint,
            launch.persona,
            pending,
            organizer,
            launch.existing,
            times=times,
            alongside=lambda v: self._seal(launch, v.end),
        )
        return self._pages.arrival(
            endpoint, launch.persona, visit, clinician_hash=clinician_hash, ehr=_held(launch)
        )

    def _open_while_reading(
        self, launch: SignedInLaunch, organizer: str, clinician_hash: str
    ) -> Response:
        """A new visit whose organizer is known: the Appointment read (for the times) runs
        alongside the claim and Graph's createOrGet, and its times ride in the lobby PATCH that
        follows anyway, so the read adds no round trip of its own to the launch. (A patient's
        launch cannot do this: its organizer comes from the appointment's clinicians.)"""
        endpoint = launch.client.endpoint
        pending = PendingVisit(visit_key=launch.visit_key, department=launch.context.department)
        read: Future[PendingVisit] = Future()  # `together` runs it in a copy of this context

        def read_times() -> None:
            try:
                read.set_result(self._pending(launch)[0])
            except Exception as exc:  # it counts only if the meeting needs the times
                read.set_exception(exc)

        def times() -> tuple[datetime | None, datetime | None]:
            known = read.result()  # waits for the read, if createOrGet answered first
            return known.start, known.end

        def open_visit() -> Visit:
            return self._opener.open(
                endpoint,
                launch.persona,
                pending,
                organizer,
                times=times,
                alongside=lambda v: self._seal(launch, v.end),
            )

        visit = together(read_times, open_visit)[1]
        return self._pages.arrival(
            endpoint, launch.persona, visit, clinician_hash=clinician_hash, ehr=_held(launch)
        )

    def _provider(self, launch: SignedInLaunch) -> Response:
        context, endpoint = launch.context, launch.client.endpoint
        if not context.user_id:
            raise AppError("LAUNCH-NO-USER")
        if context.user_type not in (None, "Practitioner", "PractitionerRole"):
            # A portal user on a provider launch URL: never let them act as a clinician.
            raise AppError("LAUNCH-NO-USER", f"The signed-in user is a {context.user_type}.")
        hashed = clinician_hash(self._privacy, endpoint, context.user_id)
        existing, organizer = together(
            lambda: self._visits.get(launch.visit_key),
            lambda: self._mappings.organizer(endpoint.id, hashed),
        )
        launch = replace(launch, existing=existing)
        if launch.existing is not None and organizer is not None:
            return self._open(launch, None, organizer, hashed)
        if organizer is not None and launch.read is None and launch.subject[0] == "Appointment":
            return self._open_while_reading(launch, organizer, hashed)
        pending, _ = self._pending(launch)
        if organizer is None:  # first launch of this clinician: one Microsoft sign-in, once
            begun, _ = together(
                lambda: self._microsoft.begin(endpoint, pending, hashed),
                lambda: self._seal(launch, pending.end),
            )
            return begun
        return self._open(launch, pending, organizer, hashed)

    def _patient(self, launch: SignedInLaunch) -> Response:
        endpoint = launch.client.endpoint
        if launch.context.user_type in ("Practitioner", "PractitionerRole"):
            # A clinician on the patient launch URL would be admitted as the patient's guest.
            raise AppError("LAUNCH-NO-USER", f"The signed-in user is a {launch.context.user_type}.")
        existing = self._visits.get(launch.visit_key)
        if existing is not None:
            launch = replace(launch, existing=existing)
            return self._open(launch, None, existing.organizer_oid)
        pending, clinicians = self._pending(launch)
        # The patient is first: the appointment's clinician organizes if we know their account.
        for practitioner in clinicians:
            organizer = self._mappings.organizer(
                endpoint.id, clinician_hash(self._privacy, endpoint, practitioner)
            )
            if organizer:
                return self._open(launch, pending, organizer)
        if endpoint.launch.default_organizer:
            return self._open(launch, pending, endpoint.launch.default_organizer)
        raise AppError("LAUNCH-NO-ORGANIZER")
