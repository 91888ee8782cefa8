"""FHIR endpoints: register, validate, approve, activate, disable, delete, each change audited.

Storage: table `Config`, PartitionKey `ep-{id}`, RowKey `endpoint`; its audit entries sit in the
same partition and land in the same transaction as the change (see audit.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lib.admin import audit
from lib.admin.auth import Principal
from lib.admin.models import (
    Approval,
    EndpointCreate,
    EndpointRecord,
    EndpointStatus,
    EndpointUpdate,
    Environment,
    Validation,
    Vendor,
    slug,
)
from lib.storage import ConcurrencyConflict, KeyExists, TableStore
from lib.web.errors import AppError

ROW = "endpoint"
Validator = Callable[[EndpointRecord], Validation]


def partition(endpoint_id: str) -> str:
    return f"ep-{endpoint_id}"


def snapshot(record: EndpointRecord | None) -> dict[str, Any] | None:
    """What an audit entry keeps of an endpoint: everything but timestamps (no secrets exist)."""
    if record is None:
        return None
    return record.model_dump(
        mode="json",
        exclude={"partition_key", "row_key", "validation", "updated_at", "created_at"},
    )


class EndpointService:
    def __init__(self, store: TableStore, validator: Validator) -> None:
        self._store = store
        self._table = store.table(audit.CONFIG_TABLE, EndpointRecord)
        self._validate = validator

    # --- reads ------------------------------------------------------------------------------
    def list(self) -> list[EndpointRecord]:
        rows = self._table.query("RowKey eq @row", {"row": ROW})
        return sorted(rows, key=lambda r: r.id)

    def ehr_origins(self) -> tuple[str, ...]:
        """Every EHR origin allowed to frame our pages (for pages not tied to one endpoint)."""
        return tuple(sorted({o for e in self.list() for o in e.launch.ehr_origins}))

    def find(self, endpoint_id: str) -> EndpointRecord | None:
        try:
            return self._table.get(partition(endpoint_id), ROW)
        except ValueError:
            return None

    def get(self, endpoint_id: str) -> EndpointRecord:
        record = self.find(endpoint_id)
        if record is None:
            raise AppError("CFG-ENDPOINT-NOT-FOUND", f"No endpoint named {endpoint_id!r}.")
        return record

    # --- changes ----------------------------------------------------------------------------
    def create(self, body: EndpointCreate, actor: Principal) -> EndpointRecord:
        if body.vendor == Vendor.EPIC and body.approver is None:
            raise AppError("CFG-APPROVER-REQUIRED")
        endpoint_id = body.id or slug(body.organization, body.vendor, body.environment)
        self._refuse_duplicate_base(body.fhir_base_url, body.environment, endpoint_id)
        now = datetime.now(UTC)
        record = EndpointRecord(
            partition_key=partition(endpoint_id),
            row_key=ROW,
            id=endpoint_id,
            **body.model_dump(exclude={"id"}),
            created_at=now,
            created_by=actor.oid,
            updated_at=now,
            updated_by=actor.oid,
        )
        record = self._revalidated(record)
        try:
            self._write(("create", record), None, record, actor, "endpoint.create")
        except KeyExists:
            raise AppError("CFG-ENDPOINT-EXISTS", f"{endpoint_id!r} is taken.") from None
        return self.get(endpoint_id)

    def update(
        self, endpoint_id: str, patch: EndpointUpdate, etag: str | None, actor: Principal
    ) -> EndpointRecord:
        current = self._for_change(endpoint_id, etag)
        changes = patch.model_dump(exclude_unset=True)
        if not changes:
            return current
        if "approver" in changes and changes["approver"] is None and current.vendor == Vendor.EPIC:
            raise AppError("CFG-APPROVER-REQUIRED")
        if "fhir_base_url" in changes:
            self._refuse_duplicate_base(patch.fhir_base_url, current.environment, endpoint_id)
        updated = current.model_copy(update=self._typed(changes, patch))
        # Where launches go or how we authenticate changed: check again, and for Epic the
        # approver must prove access again (an approval is for one server and one client).
        if {"fhir_base_url", "client_id", "client_auth"} & changes.keys():
            if current.vendor == Vendor.EPIC:
                updated.approval = Approval()
            updated = self._revalidated(updated)
        elif "approver" in changes and current.approval.approved_at is None:
            updated.approval = Approval()  # a new approver starts with a clean slate
        return self._save(current, updated, actor, "endpoint.update")

    def revalidate(self, endpoint_id: str, actor: Principal) -> EndpointRecord:
        current = self.get(endpoint_id)
        updated = self._revalidated(current.model_copy(deep=True))
        return self._save(current, updated, actor, "endpoint.validate")

    def set_enabled(self, endpoint_id: str, enabled: bool, actor: Principal) -> EndpointRecord:
        current = self.get(endpoint_id)
        if current.enabled == enabled:
            return current
        updated = current.model_copy(update={"enabled": enabled})
        updated.status = self.status_for(updated)
        return self._save(
            current, updated, actor, "endpoint.enable" if enabled else "endpoint.disable"
        )

    def activate(self, endpoint_id: str, actor: Principal) -> EndpointRecord:
        """Re-apply the activation rules, saying plainly what still blocks activation."""
        current = self.get(endpoint_id)
        updated = current.model_copy(deep=True)
        updated.status = self.status_for(updated)
        if updated.status == EndpointStatus.AWAITING_TEST:
            raise AppError("CFG-PRODUCTION-NEEDS-TEST", self._needs_test_detail(current))
        if updated.status != EndpointStatus.ACTIVE:
            raise AppError("CFG-NOT-ACTIVE", f"Status is {updated.status.value}.")
        return self._save(current, updated, actor, "endpoint.activate")

    def delete(self, endpoint_id: str, etag: str | None, actor: Principal) -> None:
        current = self._for_change(endpoint_id, etag)
        # The audit entries stay in the partition: deleting an endpoint keeps its history.
        self._write(("delete", current), current, None, actor, "endpoint.delete")

    def record_approval(
        self, endpoint_id: str, actor: Principal, ehr_user: str | None
    ) -> EndpointRecord:
        current = self.get(endpoint_id)
        updated = current.model_copy(deep=True)
        updated.approval = Approval(
            approved_by=actor.oid,
            approved_by_name=actor.name,
            approved_at=datetime.now(UTC),
            ehr_user=ehr_user,
        )
        updated.status = self.status_for(updated)
        return self._save(current, updated, actor, "endpoint.approve")

    def reject(self, endpoint_id: str, reason: str, actor: Principal) -> EndpointRecord:
        current = self.get(endpoint_id)
        self.check_approver(current, actor)
        updated = current.model_copy(deep=True)
        updated.approval = Approval(
            rejected_at=datetime.now(UTC), rejected_by=actor.oid, reason=reason
        )
        updated.status = self.status_for(updated)
        return self._save(current, updated, actor, "endpoint.reject", note=reason)

    # --- rules --------------------------------------------------------------------------------
    def check_approver(self, record: EndpointRecord, actor: Principal) -> None:
        if record.vendor != Vendor.EPIC or record.approver is None:
            raise AppError("CFG-NOT-APPROVABLE", "Only Epic endpoints have an approver.")
        if record.approver.oid.lower() != actor.oid.lower():
            raise AppError("CFG-NOT-APPROVER", f"The approver is {record.approver.display_name}.")

    def check_approvable(self, record: EndpointRecord, actor: Principal) -> None:
        self.check_approver(record, actor)
        if not (record.validation and record.validation.ok) or not record.enabled:
            raise AppError("CFG-NOT-APPROVABLE", "Validate the endpoint first.")
        if record.approval.approved_at is not None:
            raise AppError("CFG-NOT-APPROVABLE", "It is already approved.")
        if record.environment == Environment.PRODUCTION and not self._has_active_test(record):
            raise AppError("CFG-PRODUCTION-NEEDS-TEST", self._needs_test_detail(record))

    def status_for(self, record: EndpointRecord) -> EndpointStatus:
        if not record.enabled:
            return EndpointStatus.DISABLED
        if not (record.validation and record.validation.ok):
            return EndpointStatus.INVALID
        if record.vendor == Vendor.EPIC and record.approval.approved_at is None:
            if record.approval.rejected_at is not None:
                return EndpointStatus.REJECTED
            return EndpointStatus.AWAITING_APPROVAL
        if record.environment == Environment.PRODUCTION and not self._has_active_test(record):
            return EndpointStatus.AWAITING_TEST
        return EndpointStatus.ACTIVE

    def _has_active_test(self, record: EndpointRecord) -> bool:
        org = record.organization.casefold()
        return any(
            e.environment == Environment.TEST
            and e.status == EndpointStatus.ACTIVE
            and e.organization.casefold() == org
            and e.validation is not None
            and e.validation.ok
            for e in self.list()
        )

    @staticmethod
    def _needs_test_detail(record: EndpointRecord) -> str:
        return f"Organization {record.organization!r} has no active, validated test endpoint yet."

    # --- plumbing -----------------------------------------------------------------------------
    def _revalidated(self, record: EndpointRecord) -> EndpointRecord:
        record.validation = self._validate(record)
        record.status = self.status_for(record)
        return record

    def _for_change(self, endpoint_id: str, etag: str | None) -> EndpointRecord:
        if not etag:
            raise AppError("CFG-IF-MATCH-REQUIRED")
        current = self.get(endpoint_id)
        if current.etag != etag:
            raise AppError("CFG-STALE-ETAG")
        return current

    def _refuse_duplicate_base(self, base: str, environment: Environment, own_id: str) -> None:
        # One base URL, one endpoint: `iss` must identify exactly one registration.
        for other in self.list():
            if other.id != own_id and other.fhir_base_url == base:
                raise AppError(
                    "CFG-ENDPOINT-EXISTS", f"{base} is already registered as {other.id!r}."
                )

    @staticmethod
    def _typed(changes: dict[str, Any], patch: EndpointUpdate) -> dict[str, Any]:
        # model_dump turned nested models into dicts; put the validated objects back.
        return {name: getattr(patch, name) for name in changes}

    def _save(
        self,
        current: EndpointRecord,
        updated: EndpointRecord,
        actor: Principal,
        action: str,
        note: str | None = None,
    ) -> EndpointRecord:
        updated.updated_at = datetime.now(UTC)
        updated.updated_by = actor.oid
        updated.etag = current.etag
        try:
            self._write(("update", updated), current, updated, actor, action, note)
        except ConcurrencyConflict:
            raise AppError("CFG-STALE-ETAG") from None
        return self.get(current.id)

    def _write(
        self,
        op: tuple[str, EndpointRecord],
        before: EndpointRecord | None,
        after: EndpointRecord | None,
        actor: Principal,
        action: str,
        note: str | None = None,
    ) -> None:
        record = op[1]
        entry = audit.entry(
            record.partition_key,
            actor,
            action,
            f"endpoint:{record.id}",
            snapshot(before),
            snapshot(after),
            note,
        )
        self._store.transact(audit.CONFIG_TABLE, [op, ("create", entry)])
