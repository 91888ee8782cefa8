"""The audit trail: who changed what, when, with the state before and after (never secrets).

An entry lives in the same table partition as the thing it describes and is written in the same
transaction as the change, so a change without its entry (or the reverse) cannot happen. RowKeys
count down in time (`audit-{inverted ms}-{random}`) so a partition reads newest first.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from lib.endpoints.actor import Actor
from lib.storage import Entity, TableStore

CONFIG_TABLE = "Config"
AUDIT_PREFIX = "audit-"
_MAX_MS = 10**13  # inverted-time base: good until the year 2286


class AuditEntry(Entity):
    at: datetime
    actor_oid: str
    actor_name: str
    action: str  # e.g. endpoint.create, endpoint.approve
    target: str  # e.g. endpoint:contoso-epic-test
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    note: str | None = None


def _row_key(at: datetime) -> str:
    inverted = _MAX_MS - int(at.timestamp() * 1000)
    return f"{AUDIT_PREFIX}{inverted:013d}-{secrets.token_hex(4)}"


def _time_bound(at: datetime) -> str:
    return f"{AUDIT_PREFIX}{_MAX_MS - int(at.timestamp() * 1000):013d}"


def entry(
    partition_key: str,
    actor: Actor,
    action: str,
    target: str,
    before: dict | None,
    after: dict | None,
    note: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    at = at or datetime.now(UTC)
    return AuditEntry(
        partition_key=partition_key,
        row_key=_row_key(at),
        at=at,
        actor_oid=actor.oid,
        actor_name=actor.name,
        action=action,
        target=target,
        before=before,
        after=after,
        note=note,
    )


def add(store: TableStore, entry: AuditEntry) -> None:
    """An entry on its own, for changes outside the Config table (e.g. a removed mapping)."""
    store.table(CONFIG_TABLE, AuditEntry).create(entry)


def query(
    store: TableStore,
    *,
    partition_key: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    size: int = 50,
    cursor: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """Newest first. The cursor is the RowKey of the last entry returned.

    With a partition (one endpoint) this reads only that partition. Across partitions the rows
    in the time window are merged in memory: admin actions are few (hundreds a year), and the
    window (`since`, default the caller's) bounds the read.
    """
    clauses = ["RowKey ge @lo", "RowKey lt @hi"]
    params: dict[str, Any] = {
        "lo": _time_bound(until) if until else AUDIT_PREFIX,
        "hi": _time_bound(since) + "~" if since else AUDIT_PREFIX + "~",
    }
    if cursor:
        clauses.append("RowKey gt @cursor")
        params["cursor"] = cursor
    if partition_key:
        clauses.append("PartitionKey eq @pk")
        params["pk"] = partition_key
    if actor:
        clauses.append("actor_oid eq @actor")
        params["actor"] = actor
    if action:
        clauses.append("action eq @action")
        params["action"] = action
    table = store.table(CONFIG_TABLE, AuditEntry)
    rows = sorted(table.query(" and ".join(clauses), params), key=lambda e: e.row_key)
    page = rows[:size]
    more = len(rows) > size
    return page, (page[-1].row_key if more and page else None)
