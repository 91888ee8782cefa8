"""Connections to the storage account: a connection string locally, managed identity in Azure.

The Functions host reads the same `AzureWebJobsStorage` / `AzureWebJobsStorage__*` settings, so the
app and its triggers always agree on one account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lib.net.budget import MIN_USEFUL, current
from lib.storage.tables import StorageUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    from lib.settings import Settings

# Sized for a person waiting: a connection in 2 s, an answer in 3 s, one retry (after the SDK's
# ~0.8 s backoff), so an account that is down, paused or hung fails a call in about 7 s with
# SRV-STORAGE-UNAVAILABLE, not two minutes later. Table Storage answers in milliseconds, and
# Azurite too, when it answers at all.
CLIENT_OPTIONS = {"connection_timeout": 2, "read_timeout": 3, "retry_total": 1}
# Connections kept open per client: a queue function runs up to 24 messages at once (host.json
# batchSize 16 + newBatchThreshold 8), HTTP requests run beside them, and all share the clients.
# The SDK's default pool keeps 10, so under load the rest are closed after each request and the
# next one pays a new TCP and TLS handshake with the account.
POOL_SIZE = 64


def budget_hook(connect: float, read: float) -> Callable[[Any], None]:
    """The SDK's `raw_request_hook`, run before every try: the try's timeouts (the client's
    `connect` / `read`) are cut to what is left of the request's budget (lib/net/budget.py), and
    a try with no time left is not made. The SDK's own retry backoff (under a second) is not cut,
    so a call ends at most that long past the budget."""

    def within_budget(request: Any) -> None:
        budget = current()
        if budget is None:
            return
        left = budget.remaining()
        if left < MIN_USEFUL:
            raise StorageUnavailable("no time left in the budget")
        options = request.context.options
        options["connection_timeout"] = min(options.get("connection_timeout", connect), left)
        options["read_timeout"] = min(options.get("read_timeout", read), left)

    return within_budget


def _with_hook(options: dict[str, Any]) -> dict[str, Any]:
    opts = {**CLIENT_OPTIONS, **options}
    opts.setdefault(
        "raw_request_hook", budget_hook(opts["connection_timeout"], opts["read_timeout"])
    )
    if "transport" not in opts:
        opts["transport"] = pooled_transport()
    return opts


def pooled_transport() -> Any:
    """The SDK's own requests transport over a session whose pool keeps POOL_SIZE connections.
    Mounted as the SDK mounts its adapter (no urllib3 retries: the pipeline retries)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    session = requests.Session()
    no_retries = Retry(total=False, redirect=False, raise_on_status=False)
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=no_retries)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, session_owner=False)


def _credential(settings: Settings) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.storage_client_id:  # a user-assigned identity, as infra/ deploys it
        return ManagedIdentityCredential(client_id=settings.storage_client_id)
    return DefaultAzureCredential()


def _service_uri(settings: Settings, explicit: str | None, kind: str) -> str:
    if explicit:
        return explicit
    return f"https://{settings.storage_account_name}.{kind}.core.windows.net"


def table_service(settings: Settings, **options) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    opts = _with_hook(options)
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **opts)
    uri = _service_uri(settings, settings.storage_table_uri, "table")
    return TableServiceClient(endpoint=uri, credential=_credential(settings), **opts)


def queue_service(settings: Settings, **options) -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient

    opts = _with_hook(options)
    if settings.storage_connection_string:
        return QueueServiceClient.from_connection_string(settings.storage_connection_string, **opts)
    uri = _service_uri(settings, settings.storage_queue_uri, "queue")
    return QueueServiceClient(account_url=uri, credential=_credential(settings), **opts)


def storage_reachable(settings: Settings) -> bool:
    """One cheap call with no retries, for the health check."""
    from azure.core.exceptions import AzureError

    client = table_service(settings, retry_total=0, connection_timeout=2, read_timeout=3)
    try:
        next(iter(client.list_tables(results_per_page=1)), None)
        return True
    except AzureError:
        return False
