"""Call quality verdicts (F19): each stream judged against the admin's thresholds, and the call.

The defaults are Microsoft's published stream classification for Teams audio in the Call Quality
Dashboard: an audio stream is poor when its average round trip is over 500 ms, its average packet
loss rate over 0.1 (10 %), or its average jitter over 30 ms (learn.microsoft.com/microsoftteams/
stream-classification-in-call-quality-dashboard). CQD also requires more than 500 packets, and
judges video on frame figures a call record's network numbers do not carry: we judge the media
an admin lists (audio by default) on the three network averages, and say which one broke
(CQD's "Poor Due To"). A call is poor when any judged stream is; unmeasured without a record.

Judged at report time, never stored: a changed threshold re-judges past calls too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from lib.endpoints import audit
from lib.endpoints.actor import Actor
from lib.reports.rows import Stream, VisitReport
from lib.storage import ConcurrencyConflict, Entity, KeyExists, TableStore
from lib.web.errors import AppError

PARTITION, ROW = "reports", "quality-thresholds"
DEFAULTS_ETAG = 'W/"quality-defaults"'  # the version of thresholds never changed
POOR, GOOD, UNMEASURED = "poor", "good", "unmeasured"


class ThresholdFields(BaseModel):
    # strict: `true` is not a threshold (lax mode would read it as 1.0); numbers stay numbers.
    # Finite: the JSON reader takes NaN, Infinity and 1e309, which no comparison would name.
    model_config = ConfigDict(extra="forbid", strict=True)

    packet_loss: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        default=0.1, description="Poor above this average packet loss rate (0.1 = 10 %)."
    )
    jitter_ms: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = Field(
        default=30.0, description="Poor above this average jitter, in milliseconds."
    )
    round_trip_ms: Annotated[float, Field(ge=0, le=60_000, allow_inf_nan=False)] = Field(
        default=500.0, description="Poor above this average round trip, in milliseconds."
    )
    media: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z]{1,20}$")]], Field(min_length=1, max_length=5)
    ] = Field(
        default_factory=lambda: ["audio"],
        description="Streams judged: those whose media label contains one of these words.",
    )


class QualityThresholds(Entity, ThresholdFields):
    """PartitionKey `reports`, RowKey `quality-thresholds` in the Config table."""

    model_config = ConfigDict(extra="ignore", defer_build=True, strict=False)  # read from a row

    updated_at: datetime | None = None
    updated_by: str | None = None

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"partition_key", "row_key"})


@dataclass(frozen=True)
class Judged:
    """A call's figures over its judged streams and the verdict."""

    verdict: str
    poor_streams: tuple[str, ...]  # "main-audio callerToCallee: jitter" per poor stream
    avg_loss: float | None
    max_loss: float | None
    avg_jitter: float | None
    max_jitter: float | None
    avg_rtt: float | None
    max_rtt: float | None


def reasons(stream: Stream, limits: ThresholdFields) -> list[str]:
    """What makes one stream poor (empty: not poor, or not judged)."""
    if not any(word in stream.media.lower() for word in limits.media):
        return []
    found = []
    if stream.avg_rtt is not None and stream.avg_rtt > limits.round_trip_ms:
        found.append("round trip")
    if stream.avg_loss is not None and stream.avg_loss > limits.packet_loss:
        found.append("packet loss")
    if stream.avg_jitter is not None and stream.avg_jitter > limits.jitter_ms:
        found.append("jitter")
    return found


def _worst(stream: Stream, name: str) -> float | None:
    """A stream's worst value of a figure (its average when the record gives no maximum)."""
    found = getattr(stream, f"max_{name}")
    return found if found is not None else getattr(stream, f"avg_{name}")


def judge(row: VisitReport, limits: ThresholdFields) -> Judged:
    streams = row.streams
    poor = tuple(
        f"{s.media} {s.direction}: {', '.join(why)}" for s in streams if (why := reasons(s, limits))
    )
    verdict = (POOR if poor else GOOD) if row.quality_measured and streams else UNMEASURED
    return Judged(
        verdict=verdict,
        poor_streams=poor,
        avg_loss=_mean(s.avg_loss for s in streams),
        max_loss=_max(_worst(s, "loss") for s in streams),
        avg_jitter=_mean(s.avg_jitter for s in streams),
        max_jitter=_max(_worst(s, "jitter") for s in streams),
        avg_rtt=_mean(s.avg_rtt for s in streams),
        max_rtt=_max(_worst(s, "rtt") for s in streams),
    )


def _mean(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None


def _max(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


class Thresholds:
    """The admin's thresholds: read with an ETag, changed only under it, every change audited."""

    def __init__(self, store: TableStore) -> None:
        self._store = store
        self._table = store.table(audit.CONFIG_TABLE, QualityThresholds)

    def get(self) -> QualityThresholds:
        found = self._table.get(PARTITION, ROW)
        return found or QualityThresholds(partition_key=PARTITION, row_key=ROW, etag=DEFAULTS_ETAG)

    def put(self, body: ThresholdFields, etag: str | None, actor: Actor) -> QualityThresholds:
        current = self.get()
        if not etag:
            raise AppError("CFG-IF-MATCH-REQUIRED")
        if etag != current.etag:
            raise AppError("CFG-STALE-ETAG")
        row = QualityThresholds(
            partition_key=PARTITION,
            row_key=ROW,
            etag=None if current.etag == DEFAULTS_ETAG else current.etag,
            **body.model_dump(),
            updated_at=datetime.now(UTC),
            updated_by=actor.name,
        )
        entry = audit.entry(
            PARTITION, actor, "reports.thresholds", "reports:quality-thresholds",
            _view(current), _view(row),
        )  # fmt: skip
        op = "create" if current.etag == DEFAULTS_ETAG else "update"
        try:
            self._store.transact(audit.CONFIG_TABLE, [(op, row), ("create", entry)])
        except (ConcurrencyConflict, KeyExists):
            raise AppError("CFG-STALE-ETAG") from None
        return self.get()


def _view(row: QualityThresholds) -> dict[str, Any]:
    return ThresholdFields.model_validate(
        row.model_dump(include=set(ThresholdFields.model_fields))
    ).model_dump()
