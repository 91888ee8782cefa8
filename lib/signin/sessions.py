"""Sign-in sessions: the server-side half of every OAuth round trip we start.

A session is keyed by its `state` (>= 128 bits), holds the PKCE verifier and nonce, and is used
once: completing it marks it consumed under its ETag, so two callbacks racing with the same state
get one success and one LAUNCH-STATE-REUSED. The browser holds only a cookie per sign-in that
proves it started it (binding.py); no cookie slot is shared, so any number of sign-ins run side
by side in one browser (EHR tabs, iframes, embedded webviews).

Kinds (each has a completer in the callback's table, see callback.py): `approval` (an Epic
approver proving EHR access), `provider` / `patient` (EHR launches), `entra` (a clinician's
one-time Microsoft sign-in).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lib.smart.pkce import new_nonce, new_pkce, new_state
from lib.storage import ConcurrencyConflict, Entity, TableStore
from lib.web.errors import AppError

SESSION_TABLE = "Sessions"
LIFETIME = timedelta(minutes=10)


class SignInSession(Entity):
    kind: str
    endpoint_id: str | None = None
    code_verifier: str
    nonce: str
    redirect_uri: str
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None
    data: dict[str, Any] = {}


def _keys(state: str) -> tuple[str, str]:
    # Spread sessions over partitions by a prefix of the (random) state.
    return state[:2], state


class SessionStore:
    def __init__(self, store: TableStore) -> None:
        self._table = store.table(SESSION_TABLE, SignInSession)

    def start(
        self,
        kind: str,
        *,
        redirect_uri: str,
        endpoint_id: str | None = None,
        data: dict[str, Any] | None = None,
        now: datetime | None = None,
        state: str | None = None,
    ) -> SignInSession:
        """`state`: when a library (msal) must know it before the session exists."""
        now = now or datetime.now(UTC)
        state = state or new_state()
        verifier = new_pkce().verifier
        pk, rk = _keys(state)
        session = SignInSession(
            partition_key=pk,
            row_key=rk,
            kind=kind,
            endpoint_id=endpoint_id,
            code_verifier=verifier,
            nonce=new_nonce(),
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + LIFETIME,
            data=data or {},
        )
        return self._table.create(session).entity

    def find(self, state: str | None, *, now: datetime | None = None) -> SignInSession:
        """The usable session for `state` (not yet used); or the precise reason there is none."""
        if not state or len(state) < 22 or len(state) > 100:
            raise AppError("LAUNCH-STATE-MISSING")
        try:
            session = self._table.get(*_keys(state))
        except ValueError:  # characters a key cannot hold: not one of ours
            raise AppError("LAUNCH-STATE-MISSING") from None
        if session is None:
            raise AppError("LAUNCH-STATE-MISSING")
        if session.consumed_at is not None:
            raise AppError("LAUNCH-STATE-REUSED")
        if (now or datetime.now(UTC)) >= session.expires_at:
            raise AppError("LAUNCH-STATE-EXPIRED")
        return session

    def use(self, session: SignInSession, *, now: datetime | None = None) -> SignInSession:
        """Mark a found session used, under its ETag: of two racing callbacks, one wins."""
        try:
            return self._table.update(
                session.model_copy(update={"consumed_at": now or datetime.now(UTC)})
            )
        except ConcurrencyConflict:
            raise AppError("LAUNCH-STATE-REUSED") from None

    def consume(self, state: str | None, *, now: datetime | None = None) -> SignInSession:
        """`find` and `use` in one step."""
        return self.use(self.find(state, now=now), now=now)

    def purge_expired(self, *, now: datetime | None = None, grace: timedelta = LIFETIME) -> int:
        """Delete sessions past expiry (kept a little longer to tell 'reused' from 'unknown')."""
        cutoff = (now or datetime.now(UTC)) - grace
        stale = self._table.query("expires_at lt @cutoff", {"cutoff": cutoff})
        return self._table.delete_many((s.partition_key, s.row_key) for s in stale)
