"""Table Storage repositories and queues (see tables.py and queues.py)."""

from __future__ import annotations

from lib.storage.queues import QueueReader, QueueSender
from lib.storage.tables import (
    ConcurrencyConflict,
    CreateResult,
    Entity,
    KeyExists,
    Page,
    Rows,
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
    "QueueReader",
    "QueueSender",
    "Rows",
    "StorageError",
    "StorageUnavailable",
    "Table",
    "TableStore",
]
