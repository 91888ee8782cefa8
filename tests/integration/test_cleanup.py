"""The cleanup timer as the host runs it: what has expired goes, what is live stays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from azure.data.tables import TableServiceClient

import lib.bootstrap
from dev.stack import settings_env
from functions import cleanup
from lib.settings import load_settings
from lib.storage import TableStore
from lib.web.errors import AppError


def test_the_timer_purges_expired_sessions_and_sealed_values(
    storage_connection_string, monkeypatch
):
    settings = load_settings(settings_env(AzureWebJobsStorage=storage_connection_string))
    service = TableServiceClient.from_connection_string(storage_connection_string)
    svc = lib.bootstrap.build(settings, TableStore(service, "c" + uuid.uuid4().hex[:10]))
    monkeypatch.setattr(lib.bootstrap, "background_services", lambda: svc)
    earlier = datetime.now(UTC) - timedelta(hours=2)
    old = svc.sessions.start("provider", redirect_uri="http://x/cb", now=earlier)
    live = svc.sessions.start("provider", redirect_uri="http://x/cb")
    svc.sealed.put("visit-a", "phone", "+15551234567", earlier + timedelta(hours=1), now=earlier)
    svc.sealed.put("visit-b", "phone", "+15557654321", datetime.now(UTC) + timedelta(days=1))

    cleanup.cleanup(SimpleNamespace(past_due=False))

    with pytest.raises(AppError) as gone:
        svc.sessions.find(old.row_key)
    assert gone.value.code == "LAUNCH-STATE-MISSING"  # deleted, not merely expired
    assert svc.sessions.find(live.row_key).row_key == live.row_key
    assert svc.sealed.open("visit-b", "phone") == "+15557654321"
    assert svc.sealed.purge_expired() == 0  # visit-a's value is already gone
