"""Sign-in sessions on Azurite: single use, expiry, and the cleanup that removes them."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from lib.signin.sessions import SessionStore
from lib.storage import TableStore
from lib.web.errors import AppError


@pytest.fixture
def sessions(storage_connection_string) -> SessionStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    return SessionStore(TableStore(service, "s" + uuid.uuid4().hex[:10]))


def code(fn) -> str:
    with pytest.raises(AppError) as exc:
        fn()
    return exc.value.code


def test_a_session_is_used_once(sessions):
    s = sessions.start("provider", redirect_uri="http://x/cb", endpoint_id="e")
    assert len(s.row_key) >= 43  # 256 bits, url-safe
    assert s.code_verifier and s.nonce and s.code_verifier != s.nonce
    assert sessions.consume(s.row_key).endpoint_id == "e"
    assert code(lambda: sessions.consume(s.row_key)) == "LAUNCH-STATE-REUSED"


def test_racing_callbacks_get_one_success(sessions):
    s = sessions.start("provider", redirect_uri="http://x/cb")
    results: list[str] = []

    def one() -> None:
        try:
            sessions.consume(s.row_key)
            results.append("ok")
        except AppError as err:
            results.append(err.code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and set(results) == {"ok", "LAUNCH-STATE-REUSED"}


@pytest.mark.parametrize("state", [None, "", "short", "x" * 300, "a/b#c?d" * 5, "unknown" * 5])
def test_unknown_states(sessions, state):
    assert code(lambda: sessions.consume(state)) == "LAUNCH-STATE-MISSING"


def test_expiry_and_cleanup(sessions):
    old = sessions.start(
        "provider", redirect_uri="http://x/cb", now=datetime.now(UTC) - timedelta(hours=1)
    )
    fresh = sessions.start("provider", redirect_uri="http://x/cb")
    assert code(lambda: sessions.consume(old.row_key)) == "LAUNCH-STATE-EXPIRED"
    assert sessions.purge_expired() == 1
    assert code(lambda: sessions.consume(old.row_key)) == "LAUNCH-STATE-MISSING"
    assert sessions.consume(fresh.row_key)  # the live one is untouched
