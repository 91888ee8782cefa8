"""Typed repositories over Azure Table Storage.

An entity is a pydantic model (`Entity`); a `Table` stores and reads one model type. What the raw
SDK signals with exceptions and status codes becomes typed results here:
- create of an existing key -> `CreateResult(created=False, entity=<the stored one>)`, so
  callers can claim a key (create-if-absent) and learn who holds it in one call;
- update / delete with a stale ETag -> `ConcurrencyConflict`;
- storage unreachable -> `StorageUnavailable`.
Tables are created on first use, once per process.
"""

from __future__ import annotations

import base64
import enum
import json
import re
import threading
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient


class StorageError(Exception):
    """Base of the typed storage errors."""


class ConcurrencyConflict(StorageError):
    """The entity changed since it was read (stale ETag) or was removed meanwhile."""


class KeyExists(StorageError):
    """A transaction tried to create a key that is already there."""


class StorageUnavailable(StorageError):
    """Storage could not be reached or answered with a server error."""


class Entity(BaseModel):
    """A table row. Subclasses add typed fields; dict / list / model fields are kept as JSON."""

    # defer_build: schemas are built on first use, not on every cold start of the app.
    model_config = ConfigDict(extra="ignore", use_enum_values=False, defer_build=True)

    partition_key: str
    row_key: str
    etag: str | None = Field(default=None, exclude=True)
    timestamp: datetime | None = Field(default=None, exclude=True)


E = TypeVar("E", bound=Entity)

_KEY_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


def check_key(value: str) -> str:
    """PartitionKey / RowKey may not hold / \\ # ? or control characters, nor exceed 1 KiB."""
    if not value or _KEY_FORBIDDEN.search(value) or len(value.encode()) > 1024:
        raise ValueError(f"not a valid table key: {value[:40]!r}")
    return value


@dataclass(frozen=True)
class CreateResult(Generic[E]):
    entity: E
    created: bool


@dataclass(frozen=True)
class Page(Generic[E]):
    items: list[E]
    continuation: str | None


def _is_json_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_json_type(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (dict, list, tuple, set, frozenset):
        return True
    if annotation in (dict, list, tuple, set, frozenset):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


_JSON_FIELDS: dict[type, frozenset[str]] = {}


def _json_fields(model: type[Entity]) -> frozenset[str]:
    """Fields kept as JSON text: Table Storage has no nested types."""
    if model not in _JSON_FIELDS:
        _JSON_FIELDS[model] = frozenset(
            name for name, f in model.model_fields.items() if _is_json_type(f.annotation)
        )
    return _JSON_FIELDS[model]


def to_row(entity: Entity) -> dict[str, Any]:
    data = entity.model_dump(mode="python", exclude_none=False)
    row: dict[str, Any] = {
        "PartitionKey": check_key(data.pop("partition_key")),
        "RowKey": check_key(data.pop("row_key")),
    }
    json_fields = _json_fields(type(entity))
    for name, value in data.items():
        if value is None:
            continue  # absent property == None; keeps rows small
        if name in json_fields:
            value = json.dumps(entity.model_dump(mode="json", include={name})[name])
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, int) and not isinstance(value, bool) and value not in _INT32:
            value = _int64(value)
        row[name] = value
    return row


_INT32 = range(-(2**31), 2**31)


def _int64(value: int) -> Any:
    # The SDK sends plain ints as Int32 and refuses larger ones; say Int64 explicitly.
    from azure.data.tables import EdmType, EntityProperty

    return EntityProperty(value, EdmType.INT64)


def _plain(value: Any) -> Any:
    return getattr(value, "value", value) if type(value).__name__ == "EntityProperty" else value


def from_row(model: type[E], row: Any) -> E:
    data = {k: _plain(v) for k, v in dict(row).items() if k not in ("PartitionKey", "RowKey")}
    for name in _json_fields(model) & data.keys():
        if isinstance(data[name], str):
            data[name] = json.loads(data[name])
    meta = getattr(row, "metadata", {}) or {}
    return model.model_validate(
        {
            **data,
            "partition_key": row["PartitionKey"],
            "row_key": row["RowKey"],
            "etag": meta.get("etag"),
            "timestamp": meta.get("timestamp"),
        }
    )


class TableStore:
    """One storage account's tables; creates each table once per process."""

    def __init__(self, service: TableServiceClient, prefix: str = "") -> None:
        self._service = service
        self._prefix = prefix
        self._ready: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> TableClient:
        full = f"{self._prefix}{name}"
        if full in self._ready:
            return self._ready[full]
        if not _TABLE_NAME.match(full):
            raise ValueError(f"not a valid table name: {full}")
        with self._lock, _translated():
            if full not in self._ready:
                self._service.create_table_if_not_exists(full)
                self._ready[full] = self._service.get_table_client(full)
        return self._ready[full]

    def table(self, name: str, model: type[E]) -> Table[E]:
        return Table(self, name, model)

    def partition_rows(self, name: str, partition_key: str) -> Rows:
        """Every row of one partition in one round trip, parsed later by whoever knows each kind
        (a partition holding rows of several kinds, as a visit's does)."""
        with _translated():
            found = self.client(name).query_entities(
                "PartitionKey eq @pk", parameters={"pk": check_key(partition_key)}
            )
            return Rows({row["RowKey"]: row for row in found})

    def transact(self, name: str, ops: list[tuple[str, Entity]]) -> None:
        """Apply create / update / upsert / delete to one partition atomically.

        "update" and "delete" are conditional on each entity's ETag. A stale ETag or a vanished
        row raises `ConcurrencyConflict`, an existing key on "create" raises `KeyExists`; in both
        cases nothing was written. This is how a change and its audit entry land together.
        """
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        batch = []
        for op, entity in ops:
            row = to_row(entity)
            cond = {"etag": entity.etag, "match_condition": MatchConditions.IfNotModified}
            if op == "create":
                batch.append(("create", row))
            elif op == "upsert":
                batch.append(("upsert", row, {"mode": UpdateMode.REPLACE}))
            elif op == "update":
                batch.append(("update", row, {"mode": UpdateMode.REPLACE, **cond}))
            elif op == "delete":
                batch.append(("delete", row, cond))
            else:
                raise ValueError(f"unknown operation {op}")
        try:
            with _translated():
                self.client(name).submit_transaction(batch)
        except TableTransactionError as exc:
            status = getattr(exc, "status_code", None)
            if status == 409 or "EntityAlreadyExists" in str(exc):
                raise KeyExists(name) from exc
            if status in (404, 412) or "UpdateConditionNotSatisfied" in str(exc):
                raise ConcurrencyConflict(name) from exc
            raise


class Rows:
    """Rows of one partition as read (`TableStore.partition_rows`), by row key; each is parsed
    into the model its reader names, once."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._parsed: dict[str, Entity] = {}

    def get(self, model: type[E], row_key: str) -> E | None:
        if row_key not in self._raw:
            return None
        parsed = self._parsed.get(row_key)
        if not isinstance(parsed, model):
            parsed = self._parsed[row_key] = from_row(model, self._raw[row_key])
        return parsed

    def __len__(self) -> int:
        return len(self._raw)


class Table(Generic[E]):
    """Reads and writes one entity type in one table."""

    def __init__(self, store: TableStore, name: str, model: type[E]) -> None:
        self._store = store
        self.name = name
        self.model = model

    @property
    def _client(self) -> TableClient:
        return self._store.client(self.name)

    def get(self, partition_key: str, row_key: str) -> E | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with _translated():
                row = self._client.get_entity(check_key(partition_key), check_key(row_key))
        except ResourceNotFoundError:
            return None
        return from_row(self.model, row)

    def create(self, entity: E) -> CreateResult[E]:
        """Insert if absent; otherwise return the entity already stored under that key."""
        from azure.core.exceptions import ResourceExistsError

        try:
            with _translated():
                meta = self._client.create_entity(to_row(entity))
        except ResourceExistsError:
            existing = self.get(entity.partition_key, entity.row_key)
            if existing is None:  # deleted between the two calls: try once more
                return self.create(entity)
            return CreateResult(existing, created=False)
        return CreateResult(_with_meta(entity, meta), created=True)

    def upsert(self, entity: E) -> E:
        """Write whatever is there (replace); for data with a single writer."""
        from azure.data.tables import UpdateMode

        with _translated():
            meta = self._client.upsert_entity(to_row(entity), mode=UpdateMode.REPLACE)
        return _with_meta(entity, meta)

    def update(self, entity: E, *, etag: str | None = None) -> E:
        """Replace only if unchanged since read (ETag); `ConcurrencyConflict` otherwise."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        tag = etag or entity.etag
        if not tag:
            raise ValueError("update needs the ETag the entity was read with")
        try:
            with _translated():
                meta = self._client.update_entity(
                    to_row(entity),
                    mode=UpdateMode.REPLACE,
                    etag=tag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrencyConflict(f"{self.name}: entity changed or removed") from exc
        return _with_meta(entity, meta)

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        """Delete (idempotent without ETag; with one, only if unchanged)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        kwargs: dict[str, Any] = {}
        if etag:
            kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            with _translated():
                self._client.delete_entity(check_key(partition_key), check_key(row_key), **kwargs)
        except ResourceModifiedError as exc:
            raise ConcurrencyConflict(f"{self.name}: entity changed since read") from exc
        except ResourceNotFoundError as exc:
            if etag:
                raise ConcurrencyConflict(f"{self.name}: entity removed meanwhile") from exc

    def query(
        self,
        filter: str | None = None,
        parameters: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[E]:
        """All entities matching an OData filter (use @name parameters, never string-building).

        `page_size`: entities per round trip (the service's default is 1000); a reader that
        streams, such as a report, keeps its memory to one page of this size."""
        paging = {"results_per_page": page_size} if page_size else {}
        with _translated():
            rows = (
                self._client.query_entities(filter, parameters=parameters or {}, **paging)
                if filter
                else self._client.list_entities(**paging)
            )
            for count, row in enumerate(rows, 1):
                yield from_row(self.model, row)
                if limit and count >= limit:
                    return

    def partition(
        self,
        partition_key: str,
        filter: str | None = None,
        *,
        page_size: int | None = None,
        **params: Any,
    ) -> Iterator[E]:
        # The SDK substitutes @params by splitting on spaces: keep them apart from parentheses.
        clause = "PartitionKey eq @__pk" + (f" and ( {filter} )" if filter else "")
        return self.query(clause, {"__pk": partition_key, **params}, page_size=page_size)

    def page(
        self,
        filter: str | None = None,
        parameters: dict[str, Any] | None = None,
        *,
        size: int = 50,
        continuation: str | None = None,
    ) -> Page[E]:
        """One page of results and an opaque token for the next (None at the end).

        Not on a path yet: the reports (F18) page with it.
        """
        token = _decode_token(continuation)
        with _translated():
            if filter:
                pager = self._client.query_entities(
                    filter, parameters=parameters or {}, results_per_page=size
                ).by_page(continuation_token=token)
            else:
                pager = self._client.list_entities(results_per_page=size).by_page(
                    continuation_token=token
                )
            rows = list(next(pager, []))
            nxt = pager.continuation_token
        return Page([from_row(self.model, r) for r in rows], _encode_token(nxt))

    def upsert_many(self, entities: Iterable[E]) -> int:
        """Upsert in transactions: one per partition, at most 100 entities each.

        Not on a path yet: scheduling intake (F13) writes a visit's reminders with it.
        """
        by_partition: dict[str, list[E]] = {}
        for entity in entities:
            by_partition.setdefault(entity.partition_key, []).append(entity)
        count = 0
        for group in by_partition.values():
            for start in range(0, len(group), 100):
                chunk = group[start : start + 100]
                with _translated():
                    self._client.submit_transaction([("upsert", to_row(e)) for e in chunk])
                count += len(chunk)
        return count

    def delete_many(self, keys: Iterable[tuple[str, str]]) -> int:
        by_partition: dict[str, list[str]] = {}
        for pk, rk in keys:
            by_partition.setdefault(pk, []).append(rk)
        count = 0
        for pk, rks in by_partition.items():
            for start in range(0, len(rks), 100):
                ops = [
                    ("delete", {"PartitionKey": pk, "RowKey": rk})
                    for rk in rks[start : start + 100]
                ]
                with _translated():
                    self._client.submit_transaction(ops)
                count += len(ops)
        return count


def _with_meta(entity: E, meta: dict[str, Any] | None) -> E:
    meta = meta or {}
    return entity.model_copy(update={"etag": meta.get("etag"), "timestamp": meta.get("date")})


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError as exc:
        raise ValueError("not a valid continuation token") from exc
    if not isinstance(value, dict):
        raise ValueError("not a valid continuation token")
    return value


class _translated:
    """Turn transport failures and 5xx into StorageUnavailable; let typed 4xx through."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        from azure.core.exceptions import (
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        # No answer at all: refused, reset, DNS, or a read that timed out (a paused or hung
        # account answers nothing; ServiceResponseTimeoutError is a ServiceResponseError).
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            raise StorageUnavailable(type(exc).__name__) from exc
        status = getattr(exc, "status_code", None)
        if isinstance(exc, HttpResponseError) and status is not None and status >= 500:
            raise StorageUnavailable(f"storage answered {status}") from exc
        return False
