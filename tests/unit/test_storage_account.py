"""How the storage clients are built: connection strings locally, managed identity in Azure."""

from __future__ import annotations

from dev.stack import settings_env
from lib.settings import load_settings
from lib.storage.account import queue_service, table_service


def identity_settings(**extra: str):
    env = settings_env(**extra)
    del env["AzureWebJobsStorage"]
    return load_settings(env)


def test_identity_connection_uses_the_user_assigned_identity():
    from azure.identity import ManagedIdentityCredential

    s = identity_settings(
        AzureWebJobsStorage__accountName="evcstore",
        AzureWebJobsStorage__clientId="5f0c4a1e-0000-4000-8000-0000000000aa",
    )
    tables, queues = table_service(s), queue_service(s)
    assert tables.url.startswith("https://evcstore.table.core.windows.net")
    assert queues.url.startswith("https://evcstore.queue.core.windows.net")
    assert isinstance(tables.credential, ManagedIdentityCredential)


def test_explicit_service_uris_win_over_the_account_name():
    s = identity_settings(
        AzureWebJobsStorage__tableServiceUri="https://evcstore.table.core.usgovcloudapi.net",
        AzureWebJobsStorage__queueServiceUri="https://evcstore.queue.core.usgovcloudapi.net",
    )
    assert table_service(s).url.startswith("https://evcstore.table.core.usgovcloudapi.net")
    assert queue_service(s).url.startswith("https://evcstore.queue.core.usgovcloudapi.net")


def test_development_storage_connection_string():
    s = load_settings(settings_env(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    assert table_service(s).url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    assert queue_service(s).url.startswith("http://127.0.0.1:10001/devstoreaccount1")


def test_every_way_storage_fails_to_answer_is_storage_unavailable():
    """A paused Azurite (read timeout) used to surface as a 500: it is a 503 like the others."""
    import pytest
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )

    from lib.storage.tables import StorageUnavailable, _translated

    class Answer:
        def __init__(self, status: int) -> None:
            self.status_code, self.reason, self.headers = status, "x", {}

        def text(self) -> str:
            return ""

    failures = [
        ServiceRequestError("refused"),
        ServiceRequestTimeoutError("connect timed out"),
        ServiceResponseError("reset"),
        ServiceResponseTimeoutError("read timed out"),
        HttpResponseError(response=Answer(503)),
        HttpResponseError(response=Answer(500)),
    ]
    for failure in failures:
        with pytest.raises(StorageUnavailable), _translated():
            raise failure
    with pytest.raises(ResourceNotFoundError), _translated():  # a typed 4xx passes through
        raise ResourceNotFoundError("nope")
