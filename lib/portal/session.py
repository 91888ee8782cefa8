"""The portal's session cookie: who signed in, with which app roles, until when.

After the Entra ID sign-in (signin.py) the browser holds one cookie, `__Host-evc_portal`:
`HttpOnly; Secure; SameSite=Lax; Path=/`, so no script reads it, no other host or path sets it,
and no cross-site POST carries it. Its value is sealed (AES-GCM, lib/sealing.py, purpose
`portal-session`): it is authenticated, so it cannot be forged or edited, and encrypted, so the
name and object id in it are not readable from a copied cookie.

Two limits, both checked on every request: **idle** (no request for IDLE) and **absolute**
(ABSOLUTE after the sign-in, however active). Every answer to a signed-in request re-seals the
cookie with the new last-seen time, so an active admin stays signed in up to the absolute
limit. The roles are those of the sign-in's id_token; a role removed in Entra ID takes effect at
the next sign-in, at most ABSOLUTE later.

Each session has a random id; its CSRF token is a keyed hash of that id (`csrf`), put in every
form and compared on every POST (app.py), so a token is useless outside its session.

Signing out ends the session on the server too, not only in this browser: the session's id
goes into `PortalSignOuts` (as a keyed hash, until the session's absolute end), and a cookie
whose session is there counts as none. So a copy of the cookie (a shared computer, a proxy
log) stops working at sign-out, not hours later. The cleanup timer removes rows past their end.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import CookieError, SimpleCookie

from lib.admin.auth import AppRole, Principal
from lib.privacy import PrivacyKeys
from lib.sealing import SealBroken, Sealer
from lib.storage import ConcurrencyConflict, Entity, TableStore
from lib.web.errors import AppError
from lib.web.http import Request, Response

PURPOSE = "portal-session"
SEAL_KEY = "portal"  # the sealer binds every value to a key; the session id is inside
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=8)


@dataclass(frozen=True)
class PortalSession:
    sid: str
    oid: str
    name: str
    tid: str
    roles: tuple[str, ...]
    signed_in_at: datetime
    seen_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal(oid=self.oid, name=self.name, tid=self.tid, roles=frozenset(self.roles))

    def has(self, role: AppRole) -> bool:
        return self.principal.has(role)

    def expired(self, now: datetime) -> bool:
        return now - self.seen_at >= IDLE or now - self.signed_in_at >= ABSOLUTE


SIGN_OUTS = "PortalSignOuts"
PURGE_BATCH = 500


class SignedOut(Entity):
    """PartitionKey: keyed hash of the session id; RowKey `out`. Kept until the session's
    absolute end, after which its cookie is refused anyway."""

    until: datetime


class PortalSessions:
    def __init__(
        self, sealer: Sealer, privacy: PrivacyKeys, store: TableStore, *, secure: bool
    ) -> None:
        self._sealer = sealer
        self._privacy = privacy
        self._signed_out = store.table(SIGN_OUTS, SignedOut)
        self._secure = secure
        self.cookie_name = "__Host-evc_portal" if secure else "evc_portal"

    def new(self, principal: Principal, now: datetime | None = None) -> PortalSession:
        now = now or datetime.now(UTC)
        roles = tuple(sorted(r for r in principal.roles if r in AppRole._value2member_map_))
        return PortalSession(
            sid=secrets.token_urlsafe(18),
            oid=principal.oid,
            name=principal.name[:120],
            tid=principal.tid,
            roles=roles,
            signed_in_at=now,
            seen_at=now,
        )

    def csrf(self, session: PortalSession) -> str:
        return self._privacy.keyed_hash(session.sid, purpose="portal-csrf")

    def check_csrf(self, session: PortalSession, token: str | None) -> None:
        # As bytes: compare_digest refuses (TypeError) a str with non-ASCII, and the form's
        # field is whatever was sent.
        expected = self.csrf(session).encode()
        if not token or not hmac.compare_digest(token.encode(), expected):
            raise AppError("PORTAL-CSRF")

    def read(self, request: Request, now: datetime | None = None) -> PortalSession | None:
        """The request's live session; None when it has none. An expired, forged or
        unreadable cookie counts as none: the person signs in again."""
        value = self._cookie(request)
        if value is None:
            return None
        try:
            data = json.loads(self._sealer.open(value, visit_key=SEAL_KEY, purpose=PURPOSE))
            session = PortalSession(
                sid=data["sid"],
                oid=data["oid"],
                name=data["name"],
                tid=data["tid"],
                roles=tuple(data["roles"]),
                signed_in_at=datetime.fromisoformat(data["in"]),
                seen_at=datetime.fromisoformat(data["seen"]),
            )
        except (SealBroken, ValueError, TypeError, KeyError):
            return None
        if session.expired(now or datetime.now(UTC)):
            return None
        return None if self._signed_out.get(self._key(session), "out") else session

    def end(self, response: Response, session: PortalSession) -> Response:
        """Sign out: this session's cookie stops working everywhere, and this one is cleared."""
        until = session.signed_in_at + ABSOLUTE
        self._signed_out.upsert(
            SignedOut(partition_key=self._key(session), row_key="out", until=until)
        )
        return self.clear(response)

    def purge_expired(self, now: datetime | None = None, limit: int = PURGE_BATCH) -> int:
        """Remove sign-outs past their session's end (the cleanup timer); bounded per run."""
        removed = 0
        rows = self._signed_out.query("until le @t", {"t": now or datetime.now(UTC)}, limit=limit)
        for row in list(rows):
            try:
                self._signed_out.delete(row.partition_key, row.row_key, etag=row.etag)
            except ConcurrencyConflict:
                continue
            removed += 1
        return removed

    def _key(self, session: PortalSession) -> str:
        return self._privacy.keyed_hash(session.sid, purpose="portal-signout")

    def touch(self, session: PortalSession, now: datetime | None = None) -> PortalSession:
        return PortalSession(**{**session.__dict__, "seen_at": now or datetime.now(UTC)})

    def issue(self, response: Response, session: PortalSession) -> Response:
        """Set the cookie for `session` (a new sign-in, or the last-seen time moved on)."""
        payload = json.dumps(
            {
                "sid": session.sid,
                "oid": session.oid,
                "name": session.name,
                "tid": session.tid,
                "roles": list(session.roles),
                "in": session.signed_in_at.isoformat(),
                "seen": session.seen_at.isoformat(),
            },
            separators=(",", ":"),
        )
        value = self._sealer.seal(payload, visit_key=SEAL_KEY, purpose=PURPOSE)
        left = session.signed_in_at + ABSOLUTE - session.seen_at
        response.headers["Set-Cookie"] = (
            f"{self.cookie_name}={value}; {self._attributes(int(left.total_seconds()))}"
        )
        return response

    def clear(self, response: Response) -> Response:
        response.headers["Set-Cookie"] = f"{self.cookie_name}=; {self._attributes(0)}"
        return response

    def _attributes(self, max_age: int) -> str:
        secure = "Secure; " if self._secure else ""
        return f"Path=/; Max-Age={max(max_age, 0)}; HttpOnly; {secure}SameSite=Lax"

    def _cookie(self, request: Request) -> str | None:
        try:
            jar = SimpleCookie(request.headers.get("cookie", ""))
        except CookieError:
            return None
        found = jar.get(self.cookie_name)
        return found.value if found is not None and found.value else None
