"""Where an EHR client secret may be sent: the token hosts it is bound to.

An endpoint using `client_secret_basic` names the app setting that holds its secret; the secret
goes as Basic credentials to whatever token endpoint the endpoint's discovery names. So that an
admin cannot point an endpoint at a server of their own and receive a secret meant for another
EHR, each secret setting is bound to the token host it was first validated against. Sending it
to another host needs a second person: someone with the Approver role, not the admin who asked,
approves that host for that secret (audited). Until then validation reports
CFG-SECRET-HOST-UNAPPROVED and the endpoint stays `invalid`, so no launch sends the secret.

Storage: table `Config`, PartitionKey `secrets`, RowKey the setting name; its audit entries sit in
the same partition and land in the same transaction as the change.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from lib.endpoints import audit
from lib.endpoints.actor import Actor
from lib.storage import ConcurrencyConflict, Entity, KeyExists, TableStore
from lib.web.errors import AppError

PARTITION = "secrets"
# The one family of app settings an endpoint may name: never the connector's own settings.
SECRET_PREFIX = "EHR_SECRET_"
SECRET_SETTING = rf"^{SECRET_PREFIX}[A-Z0-9_]{{1,100}}$"


class SecretBinding(Entity):
    hosts: list[str]  # token hosts (host_of form) this secret may be sent to
    pending: dict[str, str] = {}  # host -> Entra object id of whoever asked for it
    updated_at: datetime


class SecretBindings:
    def __init__(self, store: TableStore) -> None:
        self._store = store
        self._table = store.table(audit.CONFIG_TABLE, SecretBinding)

    def get(self, setting: str) -> SecretBinding | None:
        try:
            return self._table.get(PARTITION, setting)
        except ValueError:
            return None

    def check(self, setting: str, host: str, asked_by: str) -> str | None:
        """None when `setting` may go to `host` (binding it, the first time); else a problem.

        An unbound host is recorded as pending, asked for by `asked_by`, for an approver.
        """
        binding = self.get(setting)
        now = datetime.now(UTC)
        if binding is None:
            first = SecretBinding(
                partition_key=PARTITION, row_key=setting, hosts=[host], updated_at=now
            )
            try:
                self._table.create(first)
                return None
            except KeyExists:  # bound by a concurrent validation: check against that
                binding = self.get(setting)
        if binding is None or host in binding.hosts:
            return None if binding is not None else f"{setting} could not be read"
        if binding.pending.get(host) is None:
            pending = {**binding.pending, host: asked_by}
            # someone else recording a request at the same time: theirs stands
            with contextlib.suppress(ConcurrencyConflict):
                self._table.update(binding.model_copy(update={"pending": pending}))
        return f"{setting} is bound to {', '.join(binding.hosts)}, not {host}"

    def approve(self, setting: str, host: str, approver: Actor) -> SecretBinding:
        """A second person lets `setting` go to `host` as well (audited in one transaction)."""
        binding = self.get(setting)
        if binding is None or host not in binding.pending:
            raise AppError("CFG-SECRET-HOST-NOT-PENDING")
        if binding.pending[host].lower() == approver.oid.lower():
            raise AppError("CFG-SECOND-PERSON-REQUIRED")
        updated = binding.model_copy(
            update={
                "hosts": sorted({*binding.hosts, host}),
                "pending": {h: who for h, who in binding.pending.items() if h != host},
                "updated_at": datetime.now(UTC),
            }
        )
        entry = audit.entry(
            PARTITION,
            approver,
            "secret.host.approve",
            f"secret:{setting}",
            {"hosts": binding.hosts},
            {"hosts": updated.hosts},
            note=f"asked by {binding.pending[host]}",
        )
        try:
            self._store.transact(audit.CONFIG_TABLE, [("update", updated), ("create", entry)])
        except ConcurrencyConflict:
            raise AppError("CFG-STALE-ETAG") from None
        return self.get(setting) or updated
