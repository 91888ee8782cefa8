"""Table Storage repositories and queues (see tables.py and queues.py)."""

from __future__ import annotations

import functools

from lib.settings import get_settings
from lib.storage.account import default_queue_service, default_table_service
from lib.storage.queues import QueueSender
from lib.storage.tables import (
    ConcurrencyConflict,
    CreateResult,
    Entity,
    KeyExists,
    Page,
    StorageError,
    StorageUnavailable,
    Table,
    TableStore,
)

__all__ = [
    "ConcurrencyConflict",
    "CreateResult",
    "Entity",
    "KeyExists",
    "Page",
    "QueueSender",
    "StorageError",
    "StorageUnavailable",
    "Table",
    "TableStore",
    "default_store",
    "queue",
]


@functools.cache
def default_store() -> TableStore:
    """The app's tables in the configured account, named with the configured prefix."""
    return TableStore(default_table_service(), get_settings().table_prefix)


@functools.cache
def queue(name: str) -> QueueSender:
    return QueueSender(default_queue_service(), name)
