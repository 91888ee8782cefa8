"""Clinicians' mapping from their EHR user to their Microsoft account (F8).

PartitionKey: the endpoint id; RowKey: the clinician hash (keys.py); the value: an Entra object
id. Made once by the clinician's Microsoft sign-in; an admin may remove a wrong one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lib.storage import Entity, TableStore
from lib.web.errors import AppError

if TYPE_CHECKING:
    from lib.endpoints.actor import Actor
    from lib.endpoints.models import Endpoint

MAPPINGS = "UserMappings"


class ClinicianMapping(Entity):
    """PartitionKey: endpoint id; RowKey: keyed hash of the EHR user id."""

    entra_oid: str
    created_at: datetime

    @property
    def clinician_hash(self) -> str:
        return self.row_key


class ClinicianMappings:
    def __init__(self, store: TableStore) -> None:
        self._store = store
        self._table = store.table(MAPPINGS, ClinicianMapping)

    def organizer(self, endpoint_id: str, clinician_hash: str) -> str | None:
        """The clinician's Entra object id, or None before their first Microsoft sign-in."""
        found = self._table.get(endpoint_id, clinician_hash)
        return found.entra_oid if found else None

    def list(self, endpoint_id: str, entra_oid: str | None = None) -> list[ClinicianMapping]:
        if entra_oid:
            return list(self._table.partition(endpoint_id, "entra_oid eq @oid", oid=entra_oid))
        return list(self._table.partition(endpoint_id))

    def put(self, endpoint_id: str, clinician_hash: str, entra_oid: str) -> None:
        self._table.upsert(
            ClinicianMapping(
                partition_key=endpoint_id,
                row_key=clinician_hash,
                entra_oid=entra_oid,
                created_at=datetime.now(UTC),
            )
        )

    def remove(self, endpoint_id: str, clinician_hash: str) -> ClinicianMapping | None:
        """Remove a mapping (the clinician signs in to Microsoft again on their next launch)."""
        try:
            found = self._table.get(endpoint_id, clinician_hash)
        except ValueError:  # characters a key cannot hold: not one of ours
            return None
        if found is not None:
            self._table.delete(endpoint_id, clinician_hash)
        return found

    def remove_audited(self, endpoint: Endpoint, mapping: str, actor: Actor) -> ClinicianMapping:
        """An admin removes a mapping (the config API and the portal): audited, with the
        Entra object id it pointed to, in the endpoint's audit partition."""
        from lib.endpoints import audit

        removed = self.remove(endpoint.id, mapping)
        if removed is None:
            raise AppError("CFG-MAPPING-NOT-FOUND")
        before = {"mapping": removed.row_key, "entra_oid": removed.entra_oid}
        target = f"endpoint:{endpoint.id}"
        entry = audit.entry(endpoint.partition_key, actor, "mapping.delete", target, before, None)
        audit.add(self._store, entry)
        return removed
