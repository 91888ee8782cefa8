"""Planning and sending the texts (F14), exactly once: see ledger.py for the state machine.

Planning (at intake): a confirmation when booked, moved or cancelled (each switchable per
endpoint), and a reminder per offset before the start, each a ledger row for that schedule
version. Sending (the timer, `run`): the due minutes up to now, each row claimed under its ETag,
then checked (visit cancelled or moved on, texts off, opted out, quiet hours, no phone), then
marked `sending` before the one call to Communication Services, then recorded. Throttling: a
429 or 5xx puts the row back (after Retry-After), and a run sends at most RATE_PER_MINUTE texts
from one number each minute (the toll-free limit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lib.privacy import PrivacyKeys
from lib.sms import texts
from lib.sms.config import SmsConfig
from lib.sms.ledger import DuePointer, Ledger, LedgerRow, bucket, minutes
from lib.sms.models import EndpointSms
from lib.sms.sender import SendResult, SmsSender
from lib.storage import ConcurrencyConflict, Entity, TableStore
from lib.visits.sealed import SealedValues
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError

RATE_PER_MINUTE = 200  # texts a minute from one toll-free number
LEASE = timedelta(minutes=2)  # a claim or a send older than this was abandoned by its run
LOOKBACK = timedelta(minutes=2)  # minutes read again each run: a pointer written late is found
CATCH_UP = timedelta(days=1)  # after a longer outage, older minutes are no longer worth a text
MAX_ATTEMPTS = 6
ON_DEMAND_GAP = timedelta(minutes=1)  # a second press within this says "already sent"
# An on-demand text's number is sealed only when a retry needs it, under its own purpose (the
# EHR's current number, which may differ from the one the scheduling message brought).
ON_DEMAND_PHONE = "phone-on-demand"
RUN_LIMIT = 2000  # rows one run handles at most; the next run takes the rest
OPTOUT = "SmsOptOut"


class _Run:
    """One sending pass's memory: the texts sent from each number (the per-minute limit), and
    each endpoint's text settings and number, read once a run instead of once a text (a change
    an admin makes shows from the next run, a minute later)."""

    def __init__(self, config: SmsConfig) -> None:
        self._config = config
        self.sent_from: Counter[str] = Counter()
        self._settings: dict[str, EndpointSms | AppError] = {}
        self._numbers: dict[str, str | None] = {}

    def settings(self, endpoint_id: str) -> EndpointSms:
        """The endpoint's settings; AppError (again, for each of its texts) once it is gone."""
        if endpoint_id not in self._settings:
            try:
                self._settings[endpoint_id] = self._config.settings(endpoint_id)
            except AppError as gone:
                self._settings[endpoint_id] = gone
        found = self._settings[endpoint_id]
        if isinstance(found, AppError):
            raise found
        return found

    def number_for(self, endpoint_id: str) -> str | None:
        if endpoint_id not in self._numbers:
            self._numbers[endpoint_id] = self._config.number_for(endpoint_id)
        return self._numbers[endpoint_id]


class OptOut(Entity):
    """PartitionKey: keyed hash of the phone number (purpose sms-optout); RowKey `optout`."""

    at: datetime
    source: str  # stop | blocked


class OptOuts:
    def __init__(self, store: TableStore, privacy: PrivacyKeys) -> None:
        self._table = store.table(OPTOUT, OptOut)
        self._privacy = privacy

    def _key(self, phone: str) -> str:
        return self._privacy.keyed_hash(phone, purpose="sms-optout")

    def add(self, phone: str, source: str) -> None:
        self._table.upsert(
            OptOut(
                partition_key=self._key(phone),
                row_key="optout",
                at=datetime.now(UTC),
                source=source,
            )
        )

    def remove(self, phone: str) -> None:
        self._table.delete(self._key(phone), "optout")

    def has(self, phone: str) -> bool:
        return self._table.get(self._key(phone), "optout") is not None


def in_quiet_hours(moment: datetime, settings: EndpointSms) -> datetime | None:
    """When quiet hours end, if ``moment`` is inside them (clinic time); else None."""
    zone = ZoneInfo(settings.time_zone)
    local = moment.astimezone(zone)
    start, end = (
        time.fromisoformat(settings.quiet_hours.start),
        time.fromisoformat(settings.quiet_hours.end),
    )
    now = local.time()
    inside = (start <= now or now < end) if start > end else (start <= now < end)
    if not inside or start == end:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


@dataclass
class RunReport:
    seen: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    deferred: int = 0
    outcomes: Counter = field(default_factory=Counter)


class Texting:
    def __init__(
        self,
        store: TableStore,
        config: SmsConfig,
        visits: VisitStore,
        sealed: SealedValues,
        sender: SmsSender,
        optouts: OptOuts,
        link: Callable[[str, int], str],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger = Ledger(store)
        self._store, self._config, self._visits, self._sealed = store, config, visits, sealed
        self._sender, self._optouts, self._link, self._now = sender, optouts, link, now

    # --- planning ---------------------------------------------------------------------------
    def plan(self, visit: Visit, kind: str) -> int:
        """The texts of ``visit`` at its schedule version after a ``kind`` message: booked,
        moved, cancelled (modified without a new time plans nothing). Returns how many."""
        settings = self._config.settings(visit.endpoint_id)
        version, now, planned = visit.schedule_version or 1, self._now(), 0
        wanted = {
            "booked": settings.confirmations.scheduled,
            "moved": settings.confirmations.updated,
            "cancelled": settings.confirmations.cancelled,
        }.get(kind, False)
        if wanted:
            planned += self._plan_one(visit, kind, f"{kind}-v{version}", now)
        if kind in ("booked", "moved") and visit.start is not None:
            for offset in settings.reminder_offsets_minutes:
                due = visit.start - timedelta(minutes=offset)
                if due > now:
                    planned += self._plan_one(
                        visit, "reminder", f"reminder-{offset}-v{version}", due
                    )
        return planned

    def _plan_one(self, visit: Visit, kind: str, text_id: str, due: datetime) -> int:
        row = LedgerRow(
            partition_key=visit.key,
            row_key=text_id,
            endpoint_id=visit.endpoint_id,
            kind=kind,
            version=visit.schedule_version or 1,
            due_at=due,
            updated_at=self._now(),
        )
        return 1 if self.ledger.plan(row) else 0

    # --- sending ----------------------------------------------------------------------------
    def run(self) -> RunReport:
        """One timer run: every minute from the cursor (or LOOKBACK ago) up to now."""
        report, now, run = RunReport(), self._now(), _Run(self._config)
        start = unfinished = now - LOOKBACK
        cursor = self.ledger.cursor()
        if cursor is not None:
            start = max(min(cursor, start), now - CATCH_UP)
        for minute in minutes(start, now):
            for pointer in self.ledger.pointers(minute):
                if report.seen >= RUN_LIMIT:
                    self.ledger.move_cursor(pointer.due_at)
                    return report
                if pointer.due_at > now:
                    continue
                report.seen += 1
                outcome = self._handle(pointer, run)
                if outcome in ("taken", "in-flight"):  # another run's: it may yet die on it
                    unfinished = min(unfinished, pointer.due_at)
                report.outcomes[outcome] += 1
                if outcome in ("sent", "skipped", "failed", "unknown"):
                    setattr(report, outcome, getattr(report, outcome) + 1)
                else:
                    report.deferred += 1
        # Everything before it was read in full (and nothing another run held is skipped).
        self.ledger.move_cursor(min(now - LOOKBACK, unfinished))
        return report

    def _handle(self, pointer: DuePointer, run: _Run) -> str:
        row = self.ledger.row_for(pointer)
        if row is None or row.state in ("sent", "failed", "unknown", "skipped", "delivered"):
            self.ledger.drop(pointer)
            return "done"
        if row.state in ("claimed", "sending"):
            return self._abandoned(row, pointer, run)
        if row.due_at > self._now():  # moved later (quiet hours, a retry): its newer pointer
            if bucket(row.due_at) != pointer.partition_key:  # (in this minute it is this one)
                self.ledger.drop(pointer)
            return "done"
        claimed = self._update(row, state="claimed", claimed_at=self._now())
        if claimed is None:
            return "taken"  # another run has it
        outcome = self._send(claimed, pointer, run)
        return outcome

    def _abandoned(self, row: LedgerRow, pointer: DuePointer, run: _Run) -> str:
        since = row.sending_at if row.state == "sending" else row.claimed_at
        if since is not None and self._now() - since < LEASE:
            return "in-flight"  # another run is on it right now
        if row.state == "claimed":  # never reached the send: safe to take again
            released = self._update(row, state="due", claimed_at=None)
            return self._handle(pointer, run) if released else "taken"
        self._finish(row, pointer, state="unknown", reason="the run sending it stopped")
        return "unknown"

    # --- on demand: the clinician's "Send link by SMS" ----------------------------------------
    def send_now(self, visit: Visit, phone: str) -> LedgerRow | None:
        """One `on-demand` text now, through the same states as the timer's texts. The row is
        created already `claimed` (a timer run leaves a fresh claim alone for LEASE), then sent
        and recorded here. A retryable failure leaves it `due` for the timer, with the number
        sealed until the visit's cleanup. None if one was sent within ON_DEMAND_GAP."""
        now = self._now()
        if self._recent_on_demand(visit.key, now):
            return None
        row = LedgerRow(
            partition_key=visit.key,
            row_key=f"on-demand-{now.astimezone(UTC):%Y%m%d%H%M}",
            endpoint_id=visit.endpoint_id,
            kind="on-demand",
            version=visit.schedule_version or 1,
            state="claimed",
            due_at=now,
            claimed_at=now,
            updated_at=now,
        )
        self.ledger.point(row, now)  # found by the timer if this request dies before the end
        created = self.ledger.rows.create(row)
        if not created.created:  # a press in the same minute
            return None
        pointer = DuePointer(partition_key=bucket(now), row_key=row.tag, due_at=now)
        if self._send(created.entity, pointer, _Run(self._config), phone=phone) == "deferred":
            purge = max(visit.end or now, now) + CATCH_UP
            self._sealed.put(visit.key, ON_DEMAND_PHONE, phone, purge)
        return self.ledger.rows.get(row.partition_key, row.row_key)

    def _recent_on_demand(self, visit_key: str, now: datetime) -> bool:
        since = now - ON_DEMAND_GAP
        return any(
            r.kind == "on-demand" and r.due_at > since and r.state not in ("failed", "skipped")
            for r in self.ledger.for_visit(visit_key)
        )

    def _send(
        self, row: LedgerRow, pointer: DuePointer, run: _Run, phone: str | None = None
    ) -> str:
        visit = self._visits.get(row.visit_key)
        why = self._why_not(row, visit)
        if why:
            self._finish(row, pointer, state="skipped", reason=why)
            return "skipped"
        assert visit is not None
        try:
            settings = run.settings(row.endpoint_id)
        except AppError:  # the endpoint was deleted since the text was planned
            self._finish(row, pointer, state="skipped", reason="the endpoint is gone")
            return "skipped"
        number = run.number_for(row.endpoint_id)
        if phone is None:
            purpose = ON_DEMAND_PHONE if row.kind == "on-demand" else "phone"
            phone = self._sealed.open(row.visit_key, purpose)
        if not settings.enabled or number is None or phone is None:
            reason = (
                "texts are off"
                if not settings.enabled
                else ("no number linked" if number is None else "no phone number")
            )
            self._finish(row, pointer, state="skipped", reason=reason)
            return "skipped"
        if self._optouts.has(phone):
            self._finish(row, pointer, state="skipped", reason="opted out")
            return "skipped"
        quiet_end = in_quiet_hours(self._now(), settings) if row.kind == "reminder" else None
        if quiet_end is not None:
            if visit.start is not None and quiet_end >= visit.start:
                self._finish(row, pointer, state="skipped", reason="quiet hours until the visit")
                return "skipped"
            return self._defer(row, pointer, quiet_end, "quiet hours")
        if run.sent_from[number] >= RATE_PER_MINUTE:
            return self._defer(row, pointer, self._now() + timedelta(minutes=1), "rate")
        text = self._text(row, visit, settings)
        sending = self._update(
            row, state="sending", sending_at=self._now(), attempts=row.attempts + 1
        )
        if sending is None:
            return "taken"
        run.sent_from[number] += 1
        return self._record(
            sending, pointer, self._sender.send(number, phone, text, row.tag), phone
        )

    def _why_not(self, row: LedgerRow, visit: Visit | None) -> str | None:
        if visit is None:
            return "the visit is gone"
        if row.version < (visit.schedule_version or 1):
            return "the appointment changed since"
        if visit.cancelled_at is not None and row.kind != "cancelled":
            return "the appointment is cancelled"
        if row.kind == "reminder" and visit.start is not None and visit.start <= self._now():
            return "the visit has started"
        return None

    def _text(self, row: LedgerRow, visit: Visit, settings: EndpointSms) -> str:
        link = self._link(visit.key, row.version) if row.kind != "cancelled" else ""
        return texts.render(
            row.kind,
            settings.language,
            settings.organization_name or "",
            visit.start,
            settings.time_zone,
            link,
        )

    def _record(self, row: LedgerRow, pointer: DuePointer, result: SendResult, phone: str) -> str:
        if result.outcome == "accepted":
            self._finish(row, pointer, state="sent", message_id=result.message_id)
            return "sent"
        if result.outcome == "unknown":
            self._finish(row, pointer, state="unknown", reason=result.reason)
            return "unknown"
        if result.outcome == "refused":
            if result.blocked:
                self._optouts.add(phone, "blocked")
            self._finish(
                row, pointer, state="failed", reason=result.reason, message_id=result.message_id
            )
            return "failed"
        if row.attempts >= MAX_ATTEMPTS:
            self._finish(row, pointer, state="failed", reason=f"gave up: {result.reason}")
            return "failed"
        wait = timedelta(seconds=max(result.retry_after or 0, 30 * 2 ** (row.attempts - 1)))
        return self._defer(row, pointer, self._now() + wait, result.reason)

    def _defer(self, row: LedgerRow, pointer: DuePointer, when: datetime, reason: str) -> str:
        """Back to `due` at ``when``: only from a state that cannot have sent this text."""
        moved = self._update(
            row, state="due", due_at=when, reason=reason, claimed_at=None, sending_at=None
        )
        if moved is not None:
            self.ledger.point(moved, when)
            # The new pointer first, then the old one away, unless both are one row (the same
            # minute): dropping it then would lose the text.
            if bucket(when) != pointer.partition_key:
                self.ledger.drop(pointer)
        return "deferred"

    def _finish(self, row: LedgerRow, pointer: DuePointer, **changes: object) -> None:
        self._update(row, **changes)
        self.ledger.drop(pointer)

    def _update(self, row: LedgerRow, **changes: object) -> LedgerRow | None:
        try:
            return self.ledger.rows.update(
                row.model_copy(update={**changes, "updated_at": self._now()})
            )
        except ConcurrencyConflict:
            return None
