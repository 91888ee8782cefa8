"""The SMS configuration (F12): consent first, then numbers, links, per-endpoint settings and
the intake certificates. Every change is ETag-checked where a row exists and lands in one
transaction with its audit entry (lib/endpoints/audit.py), as endpoint changes do.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from lib.endpoints import audit
from lib.endpoints.actor import Actor
from lib.endpoints.models import Endpoint, Environment
from lib.endpoints.service import EndpointService, partition
from lib.sms.certificates import parse as parse_certificate
from lib.sms.models import (
    ConsentGrant,
    EndpointSms,
    IntakeCertificate,
    NumberLinks,
    NumberOrder,
    NumberOrderCreate,
    OrderState,
    SmsConsent,
    SmsNumber,
    SmsSettingsUpdate,
    Statement,
    number_row,
)
from lib.sms.numbers import PhoneNumbers, Step
from lib.storage import ConcurrencyConflict, Entity, KeyExists, TableStore
from lib.web.errors import AppError

SMS = "sms"  # the partition of the organization-wide SMS rows
CONSENT = "consent"
SETTINGS_ROW = "sms"  # in each endpoint's partition
DEFAULTS_ETAG = 'W/"sms-defaults"'  # the version of settings never changed
# A purchase claimed this long ago without its operation token: the claimer stopped between the
# claim and the call (a restart); the next poll starts the purchase (Communication Services
# refuses a second purchase of one search, so a race costs an error, never a second number).
STALLED = timedelta(seconds=60)


def _now() -> datetime:
    return datetime.now(UTC)


def _view(row: Entity | None) -> dict[str, Any] | None:
    if row is None:
        return None
    data = row.model_dump(mode="json", exclude={"partition_key", "row_key", "poll_token", "pem"})
    return data


def check_etag(current: Entity | None, etag: str | None) -> None:
    """A row that exists changes only with the ETag it was read with (412 / 428)."""
    if current is None:
        return
    if not etag:
        raise AppError("CFG-IF-MATCH-REQUIRED")
    if current.etag != etag:
        raise AppError("CFG-STALE-ETAG")


class SmsConfig:
    def __init__(self, store: TableStore, endpoints: EndpointService, numbers: PhoneNumbers):
        self._store = store
        self._endpoints = endpoints
        self._numbers = numbers

    def _get(self, model: type[Entity], pk: str, rk: str) -> Any:
        return self._store.table(audit.CONFIG_TABLE, model).get(pk, rk)

    def _write(
        self,
        ops: list[tuple[str, Entity]],
        actor: Actor,
        action: str,
        target: str,
        before: Entity | None,
        after: Entity | None,
    ) -> None:
        pk = ops[0][1].partition_key
        entry = audit.entry(pk, actor, action, target, _view(before), _view(after))
        try:
            self._store.transact(audit.CONFIG_TABLE, [*ops, ("create", entry)])
        except (ConcurrencyConflict, KeyExists):
            raise AppError("CFG-STALE-ETAG") from None

    # --- consent ------------------------------------------------------------------------------
    def consent(self) -> SmsConsent | None:
        return self._get(SmsConsent, SMS, CONSENT)

    def require_consent(self) -> SmsConsent:
        found = self.consent()
        if found is None:
            raise AppError("SMS-CONSENT-REQUIRED")
        return found

    def grant(self, body: ConsentGrant, etag: str | None, actor: Actor) -> SmsConsent:
        current = self.consent()
        check_etag(current, etag)
        now = _now()
        statement = Statement(by_oid=actor.oid, by_name=actor.name, at=now)
        row = SmsConsent(
            partition_key=SMS,
            row_key=CONSENT,
            etag=current.etag if current else None,
            sends_on_behalf_of_organization=statement,
            attendees_consented=statement,
        )
        op = "update" if current else "create"
        self._write([(op, row)], actor, "sms.consent", "sms:consent", current, row)
        return self.require_consent()

    # --- numbers ------------------------------------------------------------------------------
    def _number_rows(self) -> list[SmsNumber]:
        table = self._store.table(audit.CONFIG_TABLE, SmsNumber)
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        return list(table.query(query, {"pk": SMS, "lo": "number-", "hi": "number."}))

    def numbers(self) -> list[dict[str, Any]]:
        """The resource's texting numbers, each with the endpoints linked to it."""
        links = {r.number: r for r in self._number_rows()}
        items = []
        for owned in self._numbers.owned():
            row = links.get(owned["number"])
            items.append(
                {
                    **owned,
                    "endpoints": row.endpoints if row else [],
                    "etag": row.etag if row else None,
                }
            )
        return items

    def number(self, number: str) -> SmsNumber | None:
        return self._get(SmsNumber, SMS, number_row(number))

    def number_for(self, endpoint_id: str) -> str | None:
        return next((r.number for r in self._number_rows() if endpoint_id in r.endpoints), None)

    def link(self, number: str, body: NumberLinks, etag: str | None, actor: Actor) -> SmsNumber:
        """Link ``number`` to exactly these endpoints; each moves off any other number."""
        self.require_consent()
        current = self.number(number)
        check_etag(current, etag)
        for endpoint_id in body.endpoints:
            self._endpoints.get(endpoint_id)  # 404 for an unknown one
        if current is None and not self._numbers.owns(number):
            raise AppError("SMS-NUMBER-NOT-FOUND", f"{number} is not a number of the resource.")
        now = _now()
        row = SmsNumber(
            partition_key=SMS,
            row_key=number_row(number),
            number=number,
            endpoints=body.endpoints,
            linked_at=now,
            linked_by=actor.oid,
            etag=current.etag if current else None,
        )
        ops: list[tuple[str, Entity]] = [("update" if current else "create", row)]
        for other in self._number_rows():
            if other.number != number and set(other.endpoints) & set(body.endpoints):
                moved = other.model_copy(
                    update={"endpoints": sorted(set(other.endpoints) - set(body.endpoints))}
                )
                ops.append(("update", moved))
        self._write(ops, actor, "sms.number.link", f"number:{number_row(number)}", current, row)
        found = self.number(number)
        assert found is not None
        return found

    def forget_endpoint(self, endpoint: Endpoint, actor: Actor) -> None:
        """After ``endpoint`` is deleted: off every number it was linked to (audited as
        `sms.number.unlink`), and its text settings gone, so an endpoint created again under
        the same id starts with texts off. Each under the ETag read, again on a conflict."""
        for _ in range(5):
            try:
                self._unlink(endpoint.id, actor)
                break
            except AppError as err:  # another change won the row meanwhile: read it again
                if err.code != "CFG-STALE-ETAG":
                    raise
        settings = self._get(EndpointSms, partition(endpoint.id), SETTINGS_ROW)
        if settings is not None:
            self._store.table(audit.CONFIG_TABLE, EndpointSms).delete(
                settings.partition_key, settings.row_key
            )

    def _unlink(self, endpoint_id: str, actor: Actor) -> None:
        for row in self._number_rows():
            if endpoint_id in row.endpoints:
                kept = [e for e in row.endpoints if e != endpoint_id]
                left = row.model_copy(update={"endpoints": kept})
                target = f"number:{row.row_key}"
                self._write([("update", left)], actor, "sms.number.unlink", target, row, left)

    # --- number orders (search, then purchase) ----------------------------------------------
    def order(self, body: NumberOrderCreate, actor: Actor) -> NumberOrder:
        self.require_consent()
        step = self._numbers.start_search(body.country, body.area_code)
        now = _now()
        order_id = secrets.token_hex(8)
        row = NumberOrder(
            partition_key=SMS,
            row_key=f"order-{order_id}",
            id=order_id,
            state=OrderState.SEARCHING,
            country=body.country,
            number_type=body.number_type,
            area_code=body.area_code,
            poll_token=step.token,
            created_at=now,
            created_by=actor.oid,
            updated_at=now,
        )
        self._write([("create", row)], actor, "sms.order.create", f"order:{order_id}", None, row)
        return self._advance(self.order_row(order_id), step)

    def order_row(self, order_id: str) -> NumberOrder:
        found = self._get(NumberOrder, SMS, f"order-{order_id}")
        if found is None:
            raise AppError("SMS-ORDER-NOT-FOUND")
        return found

    def poll(self, order_id: str) -> NumberOrder:
        """Move the order on by one status request, and say where it stands."""
        row = self.order_row(order_id)
        if row.state == OrderState.SEARCHING and row.poll_token:
            return self._advance(row, self._numbers.step_search(row.poll_token))
        if row.state == OrderState.PURCHASING:
            if row.poll_token:
                return self._advance(row, self._numbers.step_purchase(row.poll_token))
            if _now() - row.updated_at > STALLED:  # claimed, then the claimer stopped
                return self._purchase(row)
        return row

    def _advance(self, row: NumberOrder, step: Step) -> NumberOrder:
        if step.status == "failed":
            return self._save(row, state=OrderState.FAILED, problem=step.problem, poll_token=None)
        if step.status != "succeeded":
            return self._save(row, poll_token=step.token) if step.token != row.poll_token else row
        if row.state == OrderState.SEARCHING:
            result = step.result
            number = result.phone_numbers[0] if result.phone_numbers else None
            cost = (
                f"{result.cost.amount} {result.cost.currency_code} {result.cost.billing_frequency}"
            )
            # Claimed first (ETag): of two pollers, only the one whose write wins buys.
            claimed = self._save(
                row,
                strict=True,
                state=OrderState.PURCHASING,
                poll_token=None,
                search_id=result.search_id,
                number=number,
                cost=cost,
            )
            return self._purchase(claimed) if claimed is not None else self.order_row(row.id)
        return self._save(row, state=OrderState.SUCCEEDED, poll_token=None)

    def _purchase(self, row: NumberOrder) -> NumberOrder:
        if row.number and self._numbers.owns(row.number):
            return self._save(row, state=OrderState.SUCCEEDED, poll_token=None)
        step = self._numbers.start_purchase(row.search_id or "")
        row = self._save(row, poll_token=step.token)
        return self._advance(row, step) if step.status in ("succeeded", "failed") else row

    def _save(self, row: NumberOrder, strict: bool = False, **changes: Any) -> Any:
        """The order with ``changes``, written if nobody moved it meanwhile; otherwise theirs
        (or None when ``strict``: the caller must know that its write did not win)."""
        updated = row.model_copy(update={**changes, "updated_at": _now()})
        try:
            return self._store.table(audit.CONFIG_TABLE, NumberOrder).update(updated)
        except ConcurrencyConflict:
            return None if strict else self.order_row(row.id)

    # --- per-endpoint settings --------------------------------------------------------------
    def settings(self, endpoint_id: str) -> EndpointSms:
        """The endpoint's text settings; until first changed, the defaults, whose ETag is
        DEFAULTS_ETAG (so the first change, like every later one, names what it was based on)."""
        self._endpoints.get(endpoint_id)
        found = self._get(EndpointSms, partition(endpoint_id), SETTINGS_ROW)
        return found or EndpointSms(
            etag=DEFAULTS_ETAG,
            partition_key=partition(endpoint_id),
            row_key=SETTINGS_ROW,
            endpoint=endpoint_id,
        )

    def update_settings(
        self, endpoint_id: str, patch: SmsSettingsUpdate, etag: str | None, actor: Actor
    ) -> EndpointSms:
        current = self.settings(endpoint_id)
        stored = None if current.etag == DEFAULTS_ETAG else current
        check_etag(current, etag)
        self.require_consent()
        changes = {n: getattr(patch, n) for n in patch.model_fields_set}
        updated = current.model_copy(
            update={**changes, "updated_at": _now(), "updated_by": actor.oid}
        )
        if updated.enabled:
            self._check_can_send(updated)
        op = "update" if stored else "create"
        self._write(
            [(op, updated)],
            actor,
            "sms.settings.update",
            f"endpoint:{endpoint_id}",
            stored,
            updated,
        )
        return self.settings(endpoint_id)

    def _check_can_send(self, settings: EndpointSms) -> None:
        if self.number_for(settings.endpoint) is None:
            raise AppError("SMS-NUMBER-NOT-LINKED")
        if not settings.organization_name:
            raise AppError("SMS-ORGANIZATION-NAME-REQUIRED")

    # --- intake certificates ----------------------------------------------------------------
    def certificate(self, environment: Environment) -> IntakeCertificate | None:
        return self._get(IntakeCertificate, SMS, f"certificate-{environment.value}")

    def upload_certificate(
        self, environment: Environment, text: str, etag: str | None, actor: Actor
    ) -> IntakeCertificate:
        self.require_consent()
        current = self.certificate(environment)
        check_etag(current, etag)
        parsed = parse_certificate(text)
        row = IntakeCertificate(
            partition_key=SMS,
            row_key=f"certificate-{environment.value}",
            environment=environment,
            pem=parsed.pem,
            thumbprint_sha256=parsed.thumbprint_sha256,
            subject=parsed.subject,
            key_type=parsed.key_type,
            not_before=parsed.not_before,
            not_after=parsed.not_after,
            uploaded_at=_now(),
            uploaded_by=actor.oid,
            etag=current.etag if current else None,
        )
        self._write(
            [("update" if current else "create", row)],
            actor,
            "sms.certificate.upload",
            f"certificate:{environment.value}",
            current,
            row,
        )
        found = self.certificate(environment)
        assert found is not None
        return found
