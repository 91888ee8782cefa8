"""GET /api/launch/callback: the one redirect URI for every sign-in we start.

Order matters: the state is validated and consumed first (single use, whatever happens next);
then an EHR `error` is shown; then an RFC 9207 `iss`, when the EHR sends one, must be the issuer
we sent the user to (mix-up defence; the FHIR base is never taken from it); then the session's
kind decides what completes it.
"""

from __future__ import annotations

from lib.admin.models import EndpointRecord
from lib.services import Services
from lib.smart.http import host_of
from lib.web.errors import AppError
from lib.web.http import Request, Response
from lib.web.render import page


def handle(request: Request, svc: Services) -> Response:
    q = request.query
    session = svc.sessions.consume(q.get("state"))
    if q.get("error"):
        description = (q.get("error_description") or "")[:300]
        raise AppError("LAUNCH-EHR-ERROR", f"The EHR said: {q['error'][:60]} {description}".strip())
    if session.kind != "approval":  # launches: only in the browser that started them
        from lib.launch import binding

        binding.check(request, session.row_key, svc.settings)
    if session.kind == "entra":  # Microsoft's answer: msal checks it against its flow
        from lib.launch import signin

        return signin.complete(svc, session, q)
    record = svc.endpoints.get(session.endpoint_id or "")
    if q.get("iss") and not _issuer_matches(record, q["iss"]):
        raise AppError("LAUNCH-CALLBACK-ISS")
    code = q.get("code")
    if not code:
        raise AppError("LAUNCH-EHR-ERROR", "The EHR sent neither a code nor an error.")
    if session.kind == "approval":
        approved = svc.approvals.complete(session, code)
        return page("approved.html", endpoint=approved, approver=session.data.get("name"))
    from lib.launch import complete
    from lib.launch.start import check_usable

    check_usable(record)  # disabled during the sign-in: stop here, not after
    return complete.complete(svc, record, session, code)


def _issuer_matches(record: EndpointRecord, iss: str) -> bool:
    """RFC 9207: the issuer we sent the user to (or, without one recorded, a pinned host)."""
    validation = record.validation
    if validation and validation.issuer:
        return iss.rstrip("/") == validation.issuer.rstrip("/")
    pinned = validation.pinned_hosts.all() if validation and validation.pinned_hosts else set()
    return host_of(iss) in pinned
