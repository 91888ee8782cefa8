"""FHIR endpoints: register, validate, approve, activate, disable, delete, each change audited.

Storage: table `Config`, PartitionKey `ep-{id}`, RowKey `endpoint`; its audit entries sit in the
same partition and land in the same transaction as the change (see audit.py). The status follows
from the facts by `lifecycle.status_for`; this service only gathers the facts.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lib.ehr.profiles import profile_for
from lib.endpoints import audit, lifecycle
from lib.endpoints.actor import Actor
from lib.endpoints.models import (
    Approval,
    Endpoint,
    EndpointCreate,
    EndpointStatus,
    EndpointUpdate,
    Environment,
    Validation,
    slug,
)
from lib.net.budget import leaving
from lib.storage import ConcurrencyConflict, KeyExists, TableStore
from lib.web.errors import AppError

ROW = "endpoint"
SNAPSHOT_TTL = 5.0  # seconds a change on another instance may take to reach launches here
# (the endpoint, the Entra object id of whoever asked): what discovery says of it now
Validator = Callable[[Endpoint, str], Validation]


def partition(endpoint_id: str) -> str:
    return f"ep-{endpoint_id}"


def audit_view(endpoint: Endpoint | None) -> dict[str, Any] | None:
    """What an audit entry keeps of an endpoint: everything but timestamps (no secrets exist)."""
    if endpoint is None:
        return None
    return endpoint.model_dump(
        mode="json",
        exclude={"partition_key", "row_key", "validation", "updated_at", "created_at"},
    )


@dataclass(frozen=True)
class EndpointSnapshot:
    """Every endpoint as read at one moment, indexed by id and by FHIR base."""

    by_id: dict[str, Endpoint]
    taken_at: float

    @functools.cached_property
    def _by_base(self) -> dict[str, Endpoint]:
        return {e.fhir_base_url: e for e in self.by_id.values()}

    def find(self, endpoint_id: str) -> Endpoint | None:
        return self.by_id.get(endpoint_id)

    def by_base(self, fhir_base_url: str) -> Endpoint | None:
        return self._by_base.get(fhir_base_url.rstrip("/"))

    def ehr_origins(self) -> tuple[str, ...]:
        """Every EHR origin allowed to frame our pages (for pages not tied to one endpoint)."""
        return tuple(sorted({o for e in self.by_id.values() for o in e.launch.ehr_origins}))


# Seconds of a request's budget kept for the writes after an endpoint's validation.
STORAGE_RESERVE = 2.0


class EndpointService:
    def __init__(
        self,
        store: TableStore,
        validator: Validator,
        *,
        staleness: float = SNAPSHOT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._table = store.table(audit.CONFIG_TABLE, Endpoint)
        self._deleted: list[Callable[[Endpoint, Actor], None]] = []
        self._validate = validator
        self._staleness = staleness
        self._clock = clock
        self._snapshot: EndpointSnapshot | None = None
        self._lock = threading.Lock()

    # --- reads ------------------------------------------------------------------------------
    def list(self) -> list[Endpoint]:
        rows = self._table.query("RowKey eq @row", {"row": ROW})
        return sorted(rows, key=lambda r: r.id)

    def snapshot(self) -> EndpointSnapshot:
        """Every endpoint, at most `staleness` seconds old: what launches and pages read.

        Launches and page loads are many and need no ETag, so they share one read per instance
        every few seconds instead of a read (or, for a foreign `iss`, a scan) each. A change
        made through this instance is seen at once; one made on another instance within
        `staleness` seconds (SNAPSHOT_TTL, documented in docs/config-api.md).
        """
        current = self._snapshot
        if current is not None and self._clock() - current.taken_at < self._staleness:
            return current
        with self._lock:
            current = self._snapshot
            if current is None or self._clock() - current.taken_at >= self._staleness:
                taken_at = self._clock()
                current = EndpointSnapshot({e.id: e for e in self.list()}, taken_at)
                self._snapshot = current
            return current

    def ehr_origins(self) -> tuple[str, ...]:
        return self.snapshot().ehr_origins()

    def launchable(self, endpoint_id: str) -> Endpoint:
        """The endpoint a returning sign-in continues on, if it may still be used: it can have
        been deleted or disabled while the person was at the EHR or at Microsoft."""
        endpoint = self.snapshot().find(endpoint_id)
        if endpoint is None:
            raise AppError("LAUNCH-UNKNOWN-ENDPOINT")
        lifecycle.check_launchable(endpoint)
        return endpoint

    def find(self, endpoint_id: str) -> Endpoint | None:
        try:
            return self._table.get(partition(endpoint_id), ROW)
        except ValueError:
            return None

    def get(self, endpoint_id: str) -> Endpoint:
        endpoint = self.find(endpoint_id)
        if endpoint is None:
            raise AppError("CFG-ENDPOINT-NOT-FOUND", f"No endpoint named {endpoint_id!r}.")
        return endpoint

    # --- changes ----------------------------------------------------------------------------
    def create(self, body: EndpointCreate, actor: Actor) -> Endpoint:
        if profile_for(body.vendor).needs_approval and body.approver is None:
            raise AppError("CFG-APPROVER-REQUIRED")
        endpoint_id = body.id or slug(body.organization, body.vendor, body.environment)
        self._refuse_duplicate_base(body.fhir_base_url, body.environment, endpoint_id)
        now = datetime.now(UTC)
        endpoint = Endpoint(
            partition_key=partition(endpoint_id),
            row_key=ROW,
            id=endpoint_id,
            **body.model_dump(exclude={"id"}),
            created_at=now,
            created_by=actor.oid,
            updated_at=now,
            updated_by=actor.oid,
        )
        endpoint = self._revalidated(endpoint, actor)
        try:
            self._write(("create", endpoint), None, endpoint, actor, "endpoint.create")
        except KeyExists:
            raise AppError("CFG-ENDPOINT-EXISTS", f"{endpoint_id!r} is taken.") from None
        return self.get(endpoint_id)

    def update(
        self, endpoint_id: str, patch: EndpointUpdate, etag: str | None, actor: Actor
    ) -> Endpoint:
        current = self._for_change(endpoint_id, etag)
        changes = patch.model_dump(exclude_unset=True)
        if not changes:
            return current
        needs_approval = profile_for(current.vendor).needs_approval
        if "approver" in changes and changes["approver"] is None and needs_approval:
            raise AppError("CFG-APPROVER-NOT-REMOVABLE")
        if "fhir_base_url" in changes:
            self._refuse_duplicate_base(patch.fhir_base_url, current.environment, endpoint_id)
        updated = current.model_copy(update=self._typed(changes, patch))
        # Where launches go or how we authenticate changed: check again, and for Epic the
        # approver must prove access again (an approval is for one server and one client).
        if {"fhir_base_url", "client_id", "client_auth"} & changes.keys():
            if needs_approval:
                updated.approval = Approval()
            updated = self._revalidated(updated, actor)
        elif "writeback" in changes:
            updated = self._revalidated(updated, actor)  # its credentials are checked there
        if "approver" in changes and current.approval.approved_at is None:
            updated.approval = Approval()  # a new approver starts with a clean slate
        return self._save(current, updated, actor, "endpoint.update")

    def revalidate(self, endpoint_id: str, actor: Actor) -> Endpoint:
        current = self.get(endpoint_id)
        updated = self._revalidated(current.model_copy(deep=True), actor)
        return self._save(current, updated, actor, "endpoint.validate")

    def set_enabled(self, endpoint_id: str, enabled: bool, actor: Actor) -> Endpoint:
        current = self.get(endpoint_id)
        if current.enabled == enabled:
            return current
        updated = current.model_copy(update={"enabled": enabled})
        updated.status = self.status_for(updated)
        return self._save(
            current, updated, actor, "endpoint.enable" if enabled else "endpoint.disable"
        )

    def activate(self, endpoint_id: str, actor: Actor) -> Endpoint:
        """Re-apply the activation rules, saying plainly what still blocks activation."""
        current = self.get(endpoint_id)
        updated = current.model_copy(deep=True)
        updated.status = self.status_for(updated)
        if updated.status == EndpointStatus.AWAITING_TEST:
            raise AppError("CFG-PRODUCTION-NEEDS-TEST", self._needs_test_detail(current))
        if updated.status != EndpointStatus.ACTIVE:
            raise AppError("CFG-NOT-ACTIVE", f"Status is {updated.status.value}.")
        return self._save(current, updated, actor, "endpoint.activate")

    def when_deleted(self, listener: Callable[[Endpoint, Actor], None]) -> None:
        """Call ``listener`` after an endpoint is deleted: what other rooms keep about it
        (an SMS number's links, its text settings) goes with it."""
        self._deleted.append(listener)

    def delete(self, endpoint_id: str, etag: str | None, actor: Actor) -> None:
        current = self._for_change(endpoint_id, etag)
        # The audit entries stay in the partition: deleting an endpoint keeps its history.
        self._write(("delete", current), current, None, actor, "endpoint.delete")
        for listener in self._deleted:
            listener(current, actor)

    def approve(self, endpoint_id: str, actor: Actor, ehr_user: str | None) -> Endpoint:
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

    def reject(self, endpoint_id: str, reason: str, actor: Actor) -> Endpoint:
        current = self.get(endpoint_id)
        self.check_approver(current, actor)
        updated = current.model_copy(deep=True)
        updated.approval = Approval(
            rejected_at=datetime.now(UTC), rejected_by=actor.oid, reason=reason
        )
        updated.status = self.status_for(updated)
        return self._save(current, updated, actor, "endpoint.reject", note=reason)

    # --- rules --------------------------------------------------------------------------------
    def check_approver(self, endpoint: Endpoint, actor: Actor) -> None:
        if not profile_for(endpoint.vendor).needs_approval or endpoint.approver is None:
            raise AppError("CFG-NOT-APPROVABLE", "Only Epic endpoints have an approver.")
        if endpoint.approver.oid.lower() != actor.oid.lower():
            raise AppError("CFG-NOT-APPROVER", f"The approver is {endpoint.approver.display_name}.")

    def check_approvable(self, endpoint: Endpoint, actor: Actor) -> None:
        self.check_approver(endpoint, actor)
        if not lifecycle.validated(endpoint) or not endpoint.enabled:
            raise AppError("CFG-NOT-APPROVABLE", "Validate the endpoint first.")
        if endpoint.approval.approved_at is not None:
            raise AppError("CFG-NOT-APPROVABLE", "It is already approved.")
        if endpoint.environment == Environment.PRODUCTION and not self._has_active_test(endpoint):
            raise AppError("CFG-PRODUCTION-NEEDS-TEST", self._needs_test_detail(endpoint))

    def status_for(self, endpoint: Endpoint) -> EndpointStatus:
        return lifecycle.status_for(endpoint, has_active_test=self._has_active_test(endpoint))

    def _has_active_test(self, endpoint: Endpoint) -> bool:
        if endpoint.environment != Environment.PRODUCTION:
            return False  # only production waits for a test endpoint: no read needed
        return any(lifecycle.is_active_test_for(e, endpoint) for e in self.list())

    @staticmethod
    def _needs_test_detail(endpoint: Endpoint) -> str:
        return f"Organization {endpoint.organization!r} has no active, validated test endpoint yet."

    # --- plumbing -----------------------------------------------------------------------------
    def _revalidated(self, endpoint: Endpoint, actor: Actor) -> Endpoint:
        # An EHR that does not answer may take validation's whole share of the budget, never
        # the storage write that records what validation found.
        with leaving(STORAGE_RESERVE):
            endpoint.validation = self._validate(endpoint, actor.oid)
        endpoint.status = self.status_for(endpoint)
        return endpoint

    def _for_change(self, endpoint_id: str, etag: str | None) -> Endpoint:
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
        current: Endpoint,
        updated: Endpoint,
        actor: Actor,
        action: str,
        note: str | None = None,
    ) -> Endpoint:
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
        op: tuple[str, Endpoint],
        before: Endpoint | None,
        after: Endpoint | None,
        actor: Actor,
        action: str,
        note: str | None = None,
    ) -> None:
        endpoint = op[1]
        entry = audit.entry(
            endpoint.partition_key,
            actor,
            action,
            f"endpoint:{endpoint.id}",
            audit_view(before),
            audit_view(after),
            note,
        )
        self._store.transact(audit.CONFIG_TABLE, [op, ("create", entry)])
        self._snapshot = None  # this instance sees its own change at once
