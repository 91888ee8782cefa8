"""Sign-in sessions: the server-side half of every OAuth round trip we start.

A session is named by its `state` (>= 256 random bits), holds the PKCE verifier and nonce, and is
used once. There are two ways to keep one:

- **In the browser** (EHR launches, `provider` / `patient`): the launch URL is opened by anyone
  on the internet, so starting a launch writes nothing. The session is sealed (AES-GCM, bound to
  its state) into the sign-in's own cookie (binding.py); its `state` is `l.` + random. Using it
  is one create-if-absent write of a marker (`UsedStates`), so of two racing callbacks one wins
  and the other gets LAUNCH-STATE-REUSED.
- **In Table Storage** (`approval`, started with an admin's token; `entra`, a clinician's
  Microsoft sign-in, whose msal flow is larger): the row is marked consumed under its ETag.

The browser holds a cookie per sign-in, so no cookie slot is shared and any number of sign-ins
run side by side in one browser (EHR tabs, iframes, embedded webviews). Each kind has a completer
in the callback's table (callback.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lib.smart.pkce import new_nonce, new_pkce, new_state
from lib.storage import ConcurrencyConflict, Entity, TableStore
from lib.web.errors import AppError

SESSION_TABLE = "Sessions"
USED_TABLE = "UsedStates"
LIFETIME = timedelta(minutes=10)
BROWSER_PREFIX = "l."  # a state whose session the browser holds (a launch)
MAX_STATE = 100


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

    @property
    def state(self) -> str:
        return self.row_key

    @property
    def in_browser(self) -> bool:
        return self.row_key.startswith(BROWSER_PREFIX)


class UsedState(Entity):
    """A browser-held session that has been used (PartitionKey: 2 characters of its state)."""

    expires_at: datetime


def row_keys(state: str) -> tuple[str, str]:
    # Spread rows over partitions by a prefix of the (random) part of the state.
    random = state.removeprefix(BROWSER_PREFIX)
    return random[:2], state


def check_state(state: str | None) -> str:
    if not state or len(state) < 22 or len(state) > MAX_STATE:
        raise AppError("LAUNCH-STATE-MISSING")
    return state


class SessionStore:
    def __init__(self, store: TableStore) -> None:
        self._table = store.table(SESSION_TABLE, SignInSession)
        self._used = store.table(USED_TABLE, UsedState)

    def start(
        self,
        kind: str,
        *,
        redirect_uri: str,
        endpoint_id: str | None = None,
        data: dict[str, Any] | None = None,
        now: datetime | None = None,
        state: str | None = None,
        in_browser: bool = False,
    ) -> SignInSession:
        """A new session. `in_browser`: not stored; the caller seals it into the browser's cookie
        (BrowserBinding.bind). `state`: when a library (msal) must know it before the session."""
        now = now or datetime.now(UTC)
        state = state or ((BROWSER_PREFIX if in_browser else "") + new_state())
        pk, rk = row_keys(state)
        session = SignInSession(
            partition_key=pk,
            row_key=rk,
            kind=kind,
            endpoint_id=endpoint_id,
            code_verifier=new_pkce().verifier,
            nonce=new_nonce(),
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + LIFETIME,
            data=data or {},
        )
        if session.in_browser:
            return session
        return self._table.create(session).entity

    def find(self, state: str | None, *, now: datetime | None = None) -> SignInSession:
        """The usable stored session for `state` (not yet used); or why there is none."""
        state = check_state(state)
        try:
            session = self._table.get(*row_keys(state))
        except ValueError:  # characters a key cannot hold: not one of ours
            raise AppError("LAUNCH-STATE-MISSING") from None
        if session is None:
            raise AppError("LAUNCH-STATE-MISSING")
        if session.consumed_at is not None:
            raise AppError("LAUNCH-STATE-REUSED")
        check_fresh(session, now)
        return session

    def get(self, state: str | None, *, now: datetime | None = None) -> SignInSession:
        """The stored session for `state`, used or not, for what comes after its callback (a
        frame waiting for the sign-in in another window); fresh for a while past its expiry,
        as the cleanup keeps it."""
        state = check_state(state)
        try:
            session = self._table.get(*row_keys(state))
        except ValueError:
            raise AppError("LAUNCH-STATE-MISSING") from None
        if session is None:
            raise AppError("LAUNCH-STATE-MISSING")
        if (now or datetime.now(UTC)) >= session.expires_at + LIFETIME:
            raise AppError("LAUNCH-STATE-EXPIRED")
        return session

    def record(self, session: SignInSession, **data: Any) -> SignInSession:
        """Add to a stored session's data under its ETag: of two racing writers, one wins, and
        the other gets LAUNCH-STATE-REUSED (what makes a step single-use)."""
        try:
            return self._table.update(session.model_copy(update={"data": {**session.data, **data}}))
        except ConcurrencyConflict:
            raise AppError("LAUNCH-STATE-REUSED") from None

    def use(self, session: SignInSession, *, now: datetime | None = None) -> SignInSession:
        """Mark a session used: of two racing callbacks with one state, one wins."""
        now = now or datetime.now(UTC)
        if session.in_browser:
            marker = UsedState(
                partition_key=session.partition_key,
                row_key=session.row_key,
                expires_at=session.expires_at,
            )
            if not self._used.create(marker).created:
                raise AppError("LAUNCH-STATE-REUSED")
            return session.model_copy(update={"consumed_at": now})
        try:
            return self._table.update(session.model_copy(update={"consumed_at": now}))
        except ConcurrencyConflict:
            raise AppError("LAUNCH-STATE-REUSED") from None

    def consume(self, state: str | None, *, now: datetime | None = None) -> SignInSession:
        """`find` and `use` in one step (stored sessions)."""
        return self.use(self.find(state, now=now), now=now)

    def purge_expired(self, *, now: datetime | None = None, grace: timedelta = LIFETIME) -> int:
        """Delete sessions and used-markers past expiry (kept a little longer to tell 'reused'
        from 'unknown')."""
        cutoff = (now or datetime.now(UTC)) - grace
        removed = 0
        for table in (self._table, self._used):
            stale = table.query("expires_at lt @cutoff", {"cutoff": cutoff})
            removed += table.delete_many((s.partition_key, s.row_key) for s in stale)
        return removed


def check_fresh(session: SignInSession, now: datetime | None = None) -> None:
    if (now or datetime.now(UTC)) >= session.expires_at:
        raise AppError("LAUNCH-STATE-EXPIRED")
